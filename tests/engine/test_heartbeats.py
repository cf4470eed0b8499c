"""Heartbeat files: one strict decoder, and nothing malformed is ever acted on.

The decoder is checked on good and hostile bytes; reading ``runners/`` on
files that are not heartbeats at all (a directory, a FIFO, symlinks). Then,
through real processes: a forged heartbeat naming a live process of ours,
with a time that has no time zone, neither crashes a live runner nor gets
that process killed; the dashboard and ``jobspool status`` keep answering.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from jobspool import heartbeats
from jobspool.heartbeats import BeatJob, Heartbeat, MalformedHeartbeat, decode, encode, scan
from jobspool.leases import Lease, Liveness, kill_orphans, lock_is_free
from jobspool.names import RunningName, hostname
from jobspool.spool import Spool
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv
from tests.dashboard.support import client_for, make_dashboard
from tests.support.hosts import wait_registered
from tests.support.spoolkit import config, is_gone, kill_quietly, log_text, outcomes, stop_clean

WHEN = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _good() -> Heartbeat:
    job = BeatJob(
        id="20260301-120000-000001-0a0b0c0d",
        attempt=2,
        pid=4242,
        pid_created=1_772_366_400.25,
        started_at=WHEN,
        name="SampleJob.process",
    )
    return Heartbeat(
        runner="host-a-4242-abcdef",
        host="host-a",
        pid=4241,
        pid_created=1_772_366_000.5,
        started_at=WHEN - timedelta(hours=1),
        beat=17,
        wall=WHEN + timedelta(seconds=3),
        jobs=(job,),
    )


def _body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(encode(_good()))
    return body


def _bytes(body: object) -> bytes:
    return json.dumps(body).encode()


def _write(folder: Path, runner: str, data: bytes) -> Path:
    """Publish a heartbeat file the way a runner does: temporary name, then rename."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{runner}.{time.monotonic_ns()}.tmp"
    tmp.write_bytes(data)
    path = folder / f"{runner}.json"
    os.replace(tmp, path)
    return path


def _spool(tmp_path: Path) -> Spool:
    spool = Spool(tmp_path / "spool")
    spool.ensure_layout()
    return spool


# ---------------------------------------------------------------- the decoder


def test_what_encode_writes_decode_reads_back() -> None:
    beat = _good()
    assert decode(encode(beat)) == beat
    assert decode(encode(beat) + b" " * 4000) == beat  # padded for rewriting in place
    assert decode(encode(replace(beat, jobs=(), pid_created=None))).jobs == ()
    # Another zone is accepted and read as the same instant in UTC.
    body = _body()
    body["wall"] = "2026-03-01T14:00:03+02:00"
    assert decode(_bytes(body)).wall == beat.wall


def test_a_lease_writes_what_every_reader_accepts(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    lease = Lease(spool, "host-a-1-abcdef")
    job = replace(_good().jobs[0], pid=os.getpid(), started_at=datetime.now(UTC))
    lease.beat([job])
    lease.beat([job])
    found = scan(spool)
    assert found.malformed == {}
    beat = found.beats["host-a-1-abcdef"]
    assert (beat.runner, beat.host, beat.pid, beat.beat) == (
        "host-a-1-abcdef",
        hostname(),
        os.getpid(),
        2,
    )
    assert beat.jobs == (job,)
    assert beat.wall.tzinfo is not None and beat.started_at <= beat.wall


def _set(path: str, value: object) -> dict[str, Any]:
    body = _body()
    target = body
    *parents, last = path.split(".")
    for key in parents:
        target = target[key][0] if key == "jobs" else target[key]
    target[last] = value
    return body


MALFORMED: list[tuple[str, object, str]] = [
    ("wall", "2026-03-01T12:00:03", "wall has no time zone"),
    ("started_at", "2026-03-01T11:00:00", "started_at has no time zone"),
    ("jobs.started_at", "2026-03-01T12:00:00.5", "jobs[0].started_at has no time zone"),
    ("wall", "yesterday", "wall is not an ISO time"),
    ("wall", 1772366403, "wall is not a string"),
    ("wall", "0001-01-01T00:00:00+05:00", "wall is outside the calendar"),
    ("wall", "2026-03-01T12:00:03+00:00" + " " * 80, "wall is empty, longer than"),
    ("pid", "4241", "pid is not an integer"),
    ("pid", True, "pid is not an integer"),
    ("pid", 0, "pid is out of range"),
    ("pid", -5, "pid is out of range"),
    ("pid", 10**30, "pid is out of range"),
    ("pid", None, "pid is missing"),
    ("pid", 4241.0, "pid is not an integer"),
    ("beat", -1, "beat is out of range"),
    ("beat", 2**64, "beat is out of range"),
    ("pid_created", "soon", "pid_created is not a number"),
    ("pid_created", -1.0, "pid_created is out of range"),
    ("pid_created", 10**400, "pid_created is out of range"),
    ("pid_created", False, "pid_created is not a number"),
    ("host", "h" * 300, "host is empty, longer than"),
    ("host", "host\nb", "host is empty, longer than"),
    ("host", ["host-a"], "host is not a string"),
    ("runner", ".hidden", "runner is not a runner id"),
    ("runner", "../escape", "runner is not a runner id"),
    ("jobs", 5, "jobs is not a list"),
    ("jobs", {"id": "x"}, "jobs is not a list"),
    ("jobs", ["x"], "jobs[0] is not a JSON object"),
    ("jobs", [[[[[]]]]], "jobs[0] is not a JSON object"),
    ("jobs.attempt", True, "jobs[0].attempt is not an integer"),
    ("jobs.attempt", 2**40, "jobs[0].attempt is out of range"),
    ("jobs.pid", "4242", "jobs[0].pid is not an integer"),
    ("jobs.pid_created", [1.5], "jobs[0].pid_created is not a number"),
    ("jobs.id", "../../etc/passwd", "jobs[0].id is not a job id"),
    ("jobs.id", 7, "jobs[0].id is not a string"),
    ("jobs.name", "x" * 1000, "jobs[0].name is empty, longer than"),
]


@pytest.mark.parametrize(("field", "value", "reason"), MALFORMED)
def test_the_decoder_refuses_a_wrong_field(field: str, value: object, reason: str) -> None:
    with pytest.raises(MalformedHeartbeat) as refused:
        decode(_bytes(_set(field, value)))
    assert reason in str(refused.value)


def test_the_decoder_refuses_wrong_shapes() -> None:
    body = _body()
    del body["jobs"]
    cases: list[tuple[bytes, str]] = [
        (_bytes(body), "heartbeat lacks jobs"),
        (_bytes({**_body(), "extra": 1}), "heartbeat has an unknown field 'extra'"),
        (_bytes({**_body(), "jobs": [{**_body()["jobs"][0], "more": 1}]}), "unknown field"),
        (_bytes({**_body(), "jobs": [_body()["jobs"][0]] * 1025}), "more than 1024 attempts"),
        (_bytes([_body()]), "heartbeat is not a JSON object"),
        (b"", "empty file"),
        (b"\xef\xbb\xbf" + encode(_good()), "byte order mark"),
        (b'{"runner": "\xff"}', "not UTF-8"),
        (encode(_good()).replace(b'"beat": 17', b'"beat": NaN'), "not valid JSON"),
        (encode(_good()).replace(b'"beat": 17', b'"beat": 17, "beat": 18'), "duplicate key"),
        (encode(_good()).replace(b'"beat": 17', b'"beat": ' + b"9" * 5000), "not valid JSON"),
        (b'{"jobs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
        (b'{"jobs": ' + b"[" * 100 + b"]" * 100 + b"}", "nested deeper than"),
        (encode(_good()) + b" " * heartbeats.MAX_BYTES, "byte cap"),
    ]
    for data, reason in cases:
        with pytest.raises(MalformedHeartbeat) as refused:
            decode(data)
        assert reason in str(refused.value), (data[:80], str(refused.value))


# ---------------------------------------------------------------- reading runners/


def test_scanning_runners_follows_no_link_and_waits_on_no_fifo(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    folder = spool.dir("runners")
    good = _good()
    _write(folder, good.runner, encode(good))
    outside = tmp_path / "outside.json"
    outside.write_bytes(encode(replace(good, runner="linked-1-abcdef")))
    (folder / "linked-1-abcdef.json").symlink_to(outside)
    (folder / "dangling-1-abcdef.json").symlink_to(tmp_path / "nowhere.json")
    os.mkfifo(folder / "fifo-1-abcdef.json")
    (folder / "dir-1-abcdef.json").mkdir()
    _write(folder, "naive-1-abcdef", _bytes({**_set("wall", "2026-03-01T12:00:03")}))
    _write(folder, "copied-1-abcdef", encode(good))  # a heartbeat under another name
    (folder / f"{good.runner}.lock").write_text("")
    (folder / ".half-written.tmp").write_text("{")

    found = scan(spool)

    assert found.beats == {good.runner: good}
    assert heartbeats.read_heartbeats(spool) == found.beats
    reasons = {runner: bad.reason for runner, bad in found.malformed.items()}
    assert reasons == {
        "linked-1-abcdef": "not a regular file",
        "dangling-1-abcdef": "not a regular file",
        "fifo-1-abcdef": "not a regular file",
        "dir-1-abcdef": "not a regular file",
        "naive-1-abcdef": "wall has no time zone",
        "copied-1-abcdef": "runner does not match the file name",
    }
    assert all(bad.stamp is not None for bad in found.malformed.values())
    assert outside.read_bytes() == encode(replace(good, runner="linked-1-abcdef"))


def test_a_lock_that_is_not_a_file_is_no_proof_of_death(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    folder = spool.dir("runners")
    os.mkfifo(folder / "fifo.lock")
    (folder / "dir.lock").mkdir()
    (tmp_path / "free.lock").write_text("")
    (folder / "link.lock").symlink_to(tmp_path / "free.lock")
    for name in ("fifo.lock", "dir.lock", "link.lock"):
        assert not lock_is_free(folder / name), name
    assert lock_is_free(folder / "absent.lock")
    # A same-host heartbeat beside a FIFO lock: judged by its lease, not at once.
    beat = replace(_good(), runner="fifo", host=hostname(), jobs=())
    _write(folder, "fifo", encode(beat))
    watch = Liveness(spool, "me-1-abcdef", 5.0)
    assert watch.dead(100.0, set()) == {}
    assert watch.dead(106.0, set()) == {"fifo": beat}


def test_a_malformed_heartbeat_is_unknown_never_a_list_of_pids_to_kill(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    folder = spool.dir("runners")
    victim = replace(_good().jobs[0], pid=os.getpid(), pid_created=psutil.Process().create_time())
    forged = replace(_good(), runner="forged-1-abcdef", host=hostname(), jobs=(victim,))
    body = json.loads(encode(forged))
    body["wall"] = "2026-03-01T12:00:03"  # no time zone
    _write(folder, forged.runner, _bytes(body))
    watch = Liveness(spool, "me-1-abcdef", 5.0)
    owners = {forged.runner}
    # Not dead at once (as a same-host runner with a free lock would be)...
    assert watch.dead(100.0, owners) == {}
    # ...while the file keeps changing, it may be a live runner we cannot read...
    body["beat"] = 18
    _write(folder, forged.runner, _bytes(body))
    assert watch.dead(104.0, owners) == {}
    # ...and once it stands still for the lease, its claims may be recovered,
    # with no heartbeat to take pids from.
    assert watch.dead(108.0, owners) == {}
    assert watch.dead(109.5, owners) == {forged.runner: None}
    assert kill_orphans(None) == []
    # A runner with no file at all is judged the same way.
    assert watch.dead(200.0, {"gone-1-abcdef"}) == {}
    assert watch.dead(205.0, {"gone-1-abcdef"}) == {"gone-1-abcdef": None}


# ---------------------------------------------------------------- real processes


def _victim() -> subprocess.Popen[bytes]:
    """A live process of ours whose pid a forged heartbeat names."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def _forged_body(runner: str, host: str, pid: int, job_id: str) -> dict[str, Any]:
    created = psutil.Process(pid).create_time()
    now = datetime.now(UTC)
    return {
        "runner": runner,
        "host": host,
        "pid": pid,
        "pid_created": created,
        "started_at": now.isoformat(),
        "beat": 1,
        "wall": now.isoformat(),
        "jobs": [
            {
                "id": job_id,
                "attempt": 1,
                "pid": pid,
                "pid_created": created,
                "started_at": now.isoformat(),
                "name": "Marker.touch",
            }
        ],
    }


def _naive(body: dict[str, Any], field: str) -> None:
    target = body["jobs"][0] if field.startswith("jobs.") else body
    key = field.removeprefix("jobs.")
    target[key] = datetime.now(UTC).replace(tzinfo=None).isoformat()


@pytest.mark.parametrize("field", ["wall", "started_at", "jobs.started_at"])
def test_a_naive_time_in_a_heartbeat_neither_crashes_a_runner_nor_kills_what_it_names(
    env: SpoolEnv, tmp_path: Path, field: str
) -> None:
    marker = tmp_path / "marker"
    job_id = run_background_job("Marker", "touch", [str(marker)], config=config(env))
    victim = _victim()
    try:
        # A runner of this host that "died" holding the job, naming our victim.
        forged = f"{hostname()}-{victim.pid}-f0f0f0"
        spool = Spool(env.spool)
        assert spool.claim(f"{job_id}.json", RunningName(job_id, forged, 1)) is not None
        body = _forged_body(forged, hostname(), victim.pid, job_id)
        _naive(body, field)
        _write(env.spool / "runners", forged, _bytes(body))

        runner = env.start_runner()
        rec = env.wait_status(job_id, "completed", timeout=30)
        assert runner.proc.poll() is None, runner.stderr()
        assert victim.poll() is None, "a process named by a malformed heartbeat was killed"
        assert not is_gone(victim.pid)
        assert outcomes(rec) == ["lost", "succeeded"]
        assert rec["attempts"][0]["runner"] == forged
        assert rec["attempts"][0]["pid"] is None  # nothing taken from the forged file
        assert marker.read_text() == "ran"
        logged = log_text(env)
        assert "heartbeat_malformed" in logged
        assert f"{field.replace('jobs.', 'jobs[0].')} has no time zone" in logged
        stop_clean(runner)
    finally:
        victim.kill()
        victim.wait(10)
        kill_quietly(victim.pid)


def _plant_malformed(env: SpoolEnv) -> dict[str, str]:
    """Heartbeats of another host, one wrong thing in each; returns runner -> reason."""
    folder = env.spool / "runners"
    plants: dict[str, str] = {}
    for field in ("wall", "started_at", "jobs.started_at"):
        runner = f"host-z-{len(plants) + 1}-abcdef"
        body = _forged_body(runner, "host-z", os.getpid(), "20260301-120000-000001-0a0b0c0d")
        _naive(body, field)
        _write(folder, runner, _bytes(body))
        plants[runner] = f"{field.replace('jobs.', 'jobs[0].')} has no time zone"
    body = _forged_body("host-z-9-abcdef", "host-z", os.getpid(), "x")
    body["jobs"] = 5
    _write(folder, "host-z-9-abcdef", _bytes(body))
    plants["host-z-9-abcdef"] = "jobs is not a list"
    return plants


def test_the_dashboard_answers_beside_malformed_heartbeats(env: SpoolEnv) -> None:
    runner = env.start_runner()
    live = wait_registered(env.spool, runner.pid)
    _plant_malformed(env)
    client = client_for(make_dashboard(env))
    for path in ("/", "/api/overview", "/api/runners", "/metrics"):
        res = client.get(path)
        assert res.status == 200, (path, res.text[:500])
    listed = client.get("/api/runners").json()["runners"]
    assert [r["runner"] for r in listed] == [live]
    assert listed[0]["heartbeat_at"] is not None
    assert [r["runner"] for r in client.get("/api/overview").json()["runners"]] == [live]
    assert 'jobspool_runners{state="alive"} 1' in client.get("/metrics").text
    assert runner.proc.poll() is None, runner.stderr()
    stop_clean(runner)


def test_status_lists_good_heartbeats_and_names_the_malformed_ones(env: SpoolEnv) -> None:
    spool = Spool(env.spool)
    spool.ensure_layout()
    Lease(spool, "host-y-7-abcdef").beat([])
    plants = _plant_malformed(env)
    out = env.cli("status", "--json", "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    runners = json.loads(out.stdout)["runners"]
    assert [r["runner"] for r in runners] == ["host-y-7-abcdef"]
    assert runners[0]["running"] == 0
    for runner, reason in plants.items():
        assert f"{runner}.json: {reason}" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    text = env.cli("status", "--config", str(env.config))
    assert text.returncode == 0, text.stderr
    assert "host-y-7-abcdef" in text.stdout
