"""Files in control/ that a runner must neither obey nor die of (finding F3).

control/ belongs to the runner's user: a request is honoured only when it
is a regular file of that user (or root) that decodes under the one
request schema, and names the job its file name names. Everything else
found there (malformed bodies, forged owners, directories, FIFOs,
symlinks) goes to corrupt/ with its reason, logged once, while the runner
and its jobs carry on. All through real runner processes and real files.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobspool import actions
from jobspool.model import Job
from jobspool.spool import Spool
from jobspool.submit import run_background_job
from tests.conftest import RunnerProcess, SpoolEnv, wait_until
from tests.support.hosts import registrations, wait_registered
from tests.support.spoolkit import config, is_gone, kill_quietly, log_text, outcomes, stop_clean

GATE = {"class": "tests.support.testjobs.Gate", "allowed_methods": ["wait"]}
NOBODY = 65534
_DROP = object()  # a field left out of a request body


def _body(job_id: str, **changes: Any) -> dict[str, Any]:
    """A well-formed cancel request, as the dashboard writes it, with changes."""
    body: dict[str, Any] = {
        "kind": "cancel",
        "job": job_id,
        "at": datetime.now(UTC).isoformat(),
        "by": "admin@dashboard",
        "via": "dashboard",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not _DROP}


def _plant(env: SpoolEnv, name: str, data: bytes, *, uid: int | None = None) -> Path:
    """Publish a file in control/ whole (tmp + rename), owned by uid if given."""
    tmp = env.spool / "tmp" / f"plant-{name}"
    tmp.write_bytes(data)
    if uid is not None:
        os.chown(tmp, uid, uid)
    dst = env.spool / "control" / name
    os.rename(tmp, dst)
    return dst


def _request_name(job_id: str) -> str:
    return f"cancel~{job_id}.json"


def _reason(env: SpoolEnv, name: str) -> str:
    return (env.spool / "corrupt" / f"{name}.reason.txt").read_text()


def _quarantined(env: SpoolEnv, name: str) -> bool:
    corrupt = env.spool / "corrupt"
    return os.path.lexists(corrupt / name) and (corrupt / f"{name}.reason.txt").exists()


def _refusals(env: SpoolEnv, name: str) -> list[str]:
    return [
        line
        for line in log_text(env).splitlines()
        if " control_refused " in line and f"file={name}" in line
    ]


def _settled(env: SpoolEnv, name: str) -> bool:
    """Refused, moved to corrupt/ with its reason, and logged: the runner logs
    the refusal only after the move and the reason are written (and synced)."""
    return _quarantined(env, name) and bool(_refusals(env, name))


def _control_names(env: SpoolEnv) -> list[str]:
    return sorted(os.listdir(env.spool / "control"))


def _gated(env: SpoolEnv, tmp_path: Path) -> tuple[RunnerProcess, str, int]:
    """A runner running a Gate job (it ends when tmp_path/release exists)."""
    env.write_config(allowed_jobs={**env.settings["allowed_jobs"], "Gate": GATE})
    job_id = Spool(env.spool, durable=False).submit(
        Job(
            job="Gate",
            method="wait",
            params=[str(tmp_path / "started"), str(tmp_path / "release")],
        )
    )
    runner = env.start_runner()
    env.wait_status(job_id, "running")
    wait_until((tmp_path / "started").exists, 20, "the gated job to start")
    pid = int((tmp_path / "started").read_text())
    return runner, job_id, pid


def _beats(env: SpoolEnv, runner: RunnerProcess) -> int:
    for beat in registrations(env.spool).values():
        if beat.get("pid") == runner.pid:
            return int(beat.get("beat", 0))
    return 0


def _let_it_look_again(env: SpoolEnv, runner: RunnerProcess) -> None:
    """Wait for at least four rescans of the runner (each looks at control/):
    20 heartbeats of 0.2 s each are 4 s, eight rescan periods."""
    start = _beats(env, runner)
    wait_until(lambda: _beats(env, runner) >= start + 20, 30, "twenty more heartbeats")


# ---------------------------------------------------------------- malformed


def _bad_bodies(job_id: str) -> dict[str, tuple[bytes, str]]:
    """Request files that are not requests: bytes, and a part of the reason given."""

    def enc(body: dict[str, Any]) -> bytes:
        return json.dumps(body).encode()

    return {
        "only-by": (enc({"by": 123}), "lacks at, job, kind, via"),
        "by-number": (enc(_body(job_id, by=123)), "by is not a string"),
        "by-list": (enc(_body(job_id, by=["admin"])), "by is not a string"),
        "by-newline": (
            enc(_body(job_id, by="admin\nforged line")),
            "by holds a character that is not printable",
        ),
        "by-huge": (enc(_body(job_id, by="x" * 100_000)), "larger than the 4096-byte cap"),
        "unknown-field": (enc(_body(job_id, note="hi")), "unknown field 'note'"),
        "no-via": (enc(_body(job_id, via=_DROP)), "lacks via"),
        "naive-time": (enc(_body(job_id, at="2026-03-01T12:00:00")), "at has no time zone"),
        "other-job": (
            enc(_body(job_id, job="20200101-000000-000000-00000000")),
            "job does not match the file name",
        ),
        "other-kind": (enc(_body(job_id, kind="pause")), "kind does not match the file name"),
        "not-json": (b'{"kind": "cancel", ', "not valid JSON"),
        "not-utf8": (b'{"by": "\xff"}', "not UTF-8"),
        "a-list": (b"[1, 2]", "not a JSON object"),
        "empty": (b"", "empty file"),
    }


@pytest.mark.parametrize("case", sorted(_bad_bodies("x")))
def test_a_malformed_request_neither_stops_the_runner_nor_cancels_the_job(
    env: SpoolEnv, tmp_path: Path, case: str
) -> None:
    """F3: ``{"by": 123}`` crashed the runner at every start (pydantic's
    ValidationError from the history entry); other bodies cancelled the job."""
    marker = tmp_path / "marker"
    job_id = run_background_job("Marker", "touch", [str(marker)], config=config(env))
    data, reason = _bad_bodies(job_id)[case]
    name = _request_name(job_id)
    _plant(env, name, data)

    runner = env.start_runner()
    rec = env.wait_status(job_id, "completed")
    wait_until(lambda: _settled(env, name), 10, "the request to be quarantined and logged")
    assert runner.proc.poll() is None, runner.stderr()
    assert marker.read_text() == "ran"
    assert outcomes(rec) == ["succeeded"]
    assert [h["action"] for h in rec["history"]] == ["submitted"]
    assert _control_names(env) == []
    assert (env.spool / "corrupt" / name).read_bytes() == data  # kept byte for byte
    assert reason in _reason(env, name)
    assert len(_refusals(env, name)) == 1
    stop_clean(runner)


def test_a_malformed_request_for_a_running_job_leaves_the_attempt_alone(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """F3 on a running job: the runner killed the attempt on ``{"by": 123}``,
    then died writing the history entry."""
    runner, job_id, pid = _gated(env, tmp_path)
    name = _request_name(job_id)
    try:
        _plant(env, name, json.dumps(_body(job_id, by=123)).encode())
        wait_until(lambda: _quarantined(env, name), 10, "the request to be quarantined")
        assert not is_gone(pid)
        assert env.status_of(job_id) == "running"
        (tmp_path / "release").touch()
        rec = env.wait_status(job_id, "completed")
    finally:
        kill_quietly(pid)
    assert runner.proc.poll() is None, runner.stderr()
    assert outcomes(rec) == ["succeeded"]
    assert "by is not a string" in _reason(env, name)
    stop_clean(runner)


# ---------------------------------------------------------------- forged owner


def test_a_request_owned_by_another_user_cancels_no_pending_job(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """F3: a well-formed request of another user cancelled the job "by admin@dashboard"."""
    marker = tmp_path / "marker"
    job_id = run_background_job("Marker", "touch", [str(marker)], config=config(env))
    name = _request_name(job_id)
    _plant(env, name, json.dumps(_body(job_id)).encode(), uid=NOBODY)

    runner = env.start_runner()
    rec = env.wait_status(job_id, "completed")
    wait_until(lambda: _settled(env, name), 10, "the request to be quarantined and logged")
    assert [h["action"] for h in rec["history"]] == ["submitted"]
    assert marker.read_text() == "ran"
    assert f"owned by uid {NOBODY}" in _reason(env, name)
    assert os.lstat(env.spool / "corrupt" / name).st_uid == NOBODY
    assert len(_refusals(env, name)) == 1
    stop_clean(runner)


def test_a_request_owned_by_another_user_stops_no_running_attempt(
    env: SpoolEnv, tmp_path: Path
) -> None:
    runner, job_id, pid = _gated(env, tmp_path)
    name = _request_name(job_id)
    try:
        _plant(env, name, json.dumps(_body(job_id)).encode(), uid=NOBODY)
        wait_until(lambda: _quarantined(env, name), 10, "the request to be quarantined")
        assert not is_gone(pid)
        assert env.status_of(job_id) == "running"
        (tmp_path / "release").touch()
        rec = env.wait_status(job_id, "completed")
    finally:
        kill_quietly(pid)
    assert outcomes(rec) == ["succeeded"]
    assert [h["action"] for h in rec["history"]] == ["submitted"]
    assert f"owned by uid {NOBODY}" in _reason(env, name)
    stop_clean(runner)


# ---------------------------------------------------------------- not files


def test_directories_fifos_and_links_in_control_never_block_crash_or_act(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """F3: such entries were skipped at every look, never quarantined nor logged."""
    cfg = config(env)
    markers = [tmp_path / f"marker{n}" for n in range(4)]
    ids = [run_background_job("Marker", "touch", [str(m)], config=cfg) for m in markers]
    folder = env.spool / "control"
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(_body(ids[2])))  # a valid request, of our own user
    outside_bytes = outside.read_bytes()
    fifo_outside = tmp_path / "outside.fifo"
    os.mkfifo(fifo_outside)
    (folder / _request_name(ids[0])).mkdir()
    os.mkfifo(folder / _request_name(ids[1]))
    (folder / _request_name(ids[2])).symlink_to(outside)
    (folder / _request_name(ids[3])).symlink_to(fifo_outside)
    (folder / "junk.json").mkdir()
    _plant(env, f"pause~{ids[0]}.json", json.dumps(_body(ids[0], kind="pause")).encode())
    _plant(env, "cancel~..x.json", json.dumps(_body("..x")).encode())
    planted = sorted(os.listdir(folder))

    runner = env.start_runner()
    for job_id, marker in zip(ids, markers, strict=True):
        rec = env.wait_status(job_id, "completed")
        assert [h["action"] for h in rec["history"]] == ["submitted"]
        assert marker.read_text() == "ran"
    # An entry leaves control/ before its reason is written and its refusal logged.
    wait_until(
        lambda: _control_names(env) == [] and all(_settled(env, n) for n in planted),
        10,
        "control/ to be emptied and every entry quarantined and logged",
    )
    assert runner.proc.poll() is None, runner.stderr()
    for name in planted:
        assert len(_refusals(env, name)) == 1, name
    corrupt = env.spool / "corrupt"
    assert (corrupt / _request_name(ids[0])).is_dir()
    assert os.readlink(corrupt / _request_name(ids[2])) == str(outside)
    assert outside.read_bytes() == outside_bytes
    assert "not a regular file" in _reason(env, _request_name(ids[1]))
    assert "not a control request" in _reason(env, "junk.json")
    assert "not a control request" in _reason(env, f"pause~{ids[0]}.json")
    stop_clean(runner)


# ---------------------------------------------------------------- logged once


def test_a_request_that_cannot_be_moved_away_is_logged_once(env: SpoolEnv, tmp_path: Path) -> None:
    """While corrupt/ is unusable, a refused request stays where it is; the
    runner says so once, not at every look, and moves it once it can."""
    marker = tmp_path / "marker"
    job_id = run_background_job("Marker", "touch", [str(marker)], config=config(env))
    runner = env.start_runner()
    wait_registered(env.spool, runner.pid)
    env.wait_status(job_id, "completed")
    corrupt = env.spool / "corrupt"
    corrupt.rename(env.spool / "corrupt.aside")
    corrupt.write_text("not a directory")
    name = _request_name(job_id)
    _plant(env, name, b'{"by": 123}')

    wait_until(lambda: _refusals(env, name), 10, "the refusal to be logged")
    _let_it_look_again(env, runner)
    [line] = _refusals(env, name)
    assert "error=" in line
    assert _control_names(env) == [name]
    assert runner.proc.poll() is None, runner.stderr()

    corrupt.unlink()
    (env.spool / "corrupt.aside").rename(corrupt)
    wait_until(lambda: _quarantined(env, name), 10, "the request to be quarantined")
    assert _control_names(env) == []
    stop_clean(runner)


# ---------------------------------------------------------------- the writers


def test_a_request_made_by_the_library_always_decodes_and_is_honoured(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """Whatever a caller passes as who and from where, the request written
    is one the runner accepts: text too long or not printable is cut and
    escaped on the way in, and the history records the request's values."""
    runner, job_id, pid = _gated(env, tmp_path)
    who = "ops\u202e" + "x" * 500
    try:
        assert actions.cancel(Spool(env.spool), job_id, by=who, via="script\n") == "requested"
        rec = env.wait_status(job_id, "cancelled")
        wait_until(lambda: is_gone(pid), 10, "the attempt to be killed")
    finally:
        kill_quietly(pid)
    [entry] = [h for h in rec["history"] if h["action"] == "cancelled"]
    assert entry["by"].startswith("ops\\u202exxx")
    assert len(entry["by"]) == 255
    assert entry["via"] == "script\\n"
    # The request is cleared just after the cancelled record is published.
    wait_until(lambda: _control_names(env) == [], 10, "the honoured request to be cleared")
    assert list((env.spool / "corrupt").iterdir()) == []
    stop_clean(runner)
