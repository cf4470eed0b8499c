"""What a producer drops into pending/: ids, bookkeeping, limits, size (F5, F6, F10).

A producer may write anything into pending/, including every field of a full
record. The rules under test (the intake module's docstring states them):

* a file gets the id its name says only if no other status directory holds
  that id, or if it is the runner's own sealed and newer copy of that job (a
  retry published, a person's retry); a file that repeats an id in use is
  requeued under a fresh id, its name kept as ``original_name``, and the
  job that owns the id keeps it;
* the runner's own bookkeeping (attempts, attempt_base, result, error,
  reason, progress, history, next_attempt_at, original_name) is ignored in
  a file without the runner's seal; per-job overrides may lower the
  allow-list's timeout and attempts, never raise them; ``run_background_job``
  and ``runjob`` refuse what would raise them;
* a record larger than ``max_job_bytes`` is refused before it is built.

Most cases are real files handled by a real runner process. The instants in
the middle of a publication are reproduced with the runner's own intake on
real files, hooked at the very call where the instant falls.
"""

from __future__ import annotations

import json
import os
import stat
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from jobspool import actions, codec, leftovers, sealing
from jobspool.errors import InvalidJobFile, InvalidParams
from jobspool.fsops import FileOps, StrPath
from jobspool.model import Job
from jobspool.names import RunningName
from jobspool.spool import Spool
from jobspool.stages.intake import Intake
from jobspool.states import Status
from jobspool.submit import run_background_job
from tests.conftest import TEST_JOBS, SpoolEnv, wait_until
from tests.support.spoolkit import (
    assert_one_line_error,
    config,
    corrupt_entries,
    job_doc,
    outcomes,
    stop_clean,
)

GATE = {"class": "tests.support.testjobs.Gate", "allowed_methods": ["wait"]}
OLD = 120.0


def aged(path: Path, seconds: float = OLD) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def completed_records(env: SpoolEnv) -> list[dict[str, Any]]:
    folder = env.spool / "completed"
    return [json.loads((folder / n).read_text()) for n in env.files("completed")]


def forged_bookkeeping() -> dict[str, Any]:
    """Every field a runner writes, as a producer could forge them."""
    attempt = {
        "number": 7,
        "runner": "forged",
        "host": "forged",
        "outcome": "failed",
        "error": {"type": "Forged", "message": "never happened"},
    }
    return {
        "revision": 40,
        "attempts": [attempt, {**attempt, "number": 8}],
        "attempt_base": 0,
        "next_attempt_at": "2999-01-01T00:00:00Z",
        "result": "forged result",
        "error": {"type": "Forged", "message": "forged error"},
        "reason": "forged reason",
        "progress": {"fraction": 0.5, "message": "forged"},
        "history": [
            {"at": "2026-01-01T00:00:00Z", "action": "retried", "by": "admin", "via": "dashboard"}
        ],
        "original_name": "forged.json",
    }


# ---------------------------------------------------------------- F5: ids


def test_a_dropped_file_cannot_take_the_id_of_a_running_job(env: SpoolEnv, tmp_path: Path) -> None:
    """F5: pending/<running id>.json with a higher revision ran under the victim's id."""
    env.write_config(allowed_jobs={**TEST_JOBS, "Gate": GATE})
    started, release, marker = tmp_path / "started", tmp_path / "release", tmp_path / "marker"
    victim = run_background_job("Gate", "wait", [str(started), str(release)], config=config(env))
    runner = env.start_runner()
    wait_until(started.exists, what="the victim to start")
    forged = job_doc("Marker", "touch", [str(marker)], id=victim, **forged_bookkeeping())
    env.drop(f"{victim}.json", forged.replace('"2999-01-01T00:00:00Z"', "null"))

    wait_until(marker.exists, what="the dropped job to run")
    release.touch()
    record = env.wait_status(victim, "completed")
    wait_until(lambda: len(env.files("completed")) == 2, what="both jobs to complete")

    assert (record["job"], record["params"]) == ("Gate", [str(started), str(release)])
    assert record["result"].startswith("released") and outcomes(record) == ["succeeded"]
    (dropped,) = [r for r in completed_records(env) if r["id"] != victim]
    assert (dropped["job"], dropped["original_name"]) == ("Marker", f"{victim}.json")
    assert [a["number"] for a in dropped["attempts"]] == [1]
    assert corrupt_entries(env) == []
    stop_clean(runner)


def test_a_forged_copy_never_outranks_the_running_claim(env: SpoolEnv, tmp_path: Path) -> None:
    """F5: resolve_duplicates ranked copies by the producer-settable revision."""
    spool = Spool(env.spool)
    victim = spool.submit(Job(job="Marker", method="touch", params=[str(tmp_path / "m")]))
    claim = spool.claim(f"{victim}.json", RunningName(victim, "runner-a", 1))
    assert claim is not None
    doc = job_doc("Marker", "touch", ["x"], revision=1000)
    forged = env.drop(f"{victim}.json", doc)
    stamp = time.time() - OLD  # as after a reboot: every file equally old
    for path in (Path(claim), forged):
        os.utime(path, (stamp, stamp))

    leftovers.resolve_duplicates(spool, min_age=0)

    assert os.path.exists(claim), corrupt_entries(env)
    assert env.files("pending") == []
    (kept,) = [n for n in corrupt_entries(env) if not n.endswith(".reason.txt")]
    assert (env.spool / "corrupt" / kept).read_bytes() == doc.encode()


def test_a_newer_file_under_a_taken_id_is_requeued_under_a_fresh_id(env: SpoolEnv) -> None:
    spool = Spool(env.spool)
    done = spool.submit(Job(job="Marker", method="touch", params=["a"]))
    claim = spool.claim(f"{done}.json", RunningName(done, "runner-a", 1))
    assert claim is not None
    spool.finish(claim, Status.COMPLETED, spool.seal(spool.read_job(claim), {"result": "a"}))
    aged(env.spool / "completed" / f"{done}.json")  # it completed a while ago
    completed = (env.spool / "completed" / f"{done}.json").read_bytes()
    env.drop(f"{done}.json", job_doc("Marker", "touch", ["b"], **forged_bookkeeping()))

    intake = Intake(spool)
    intake.rescan()

    assert (env.spool / "completed" / f"{done}.json").read_bytes() == completed
    (name,) = env.files("pending")
    assert name != f"{done}.json"
    requeued = spool.read_job(spool.dir(Status.PENDING) / name)
    assert (requeued.id, requeued.original_name) == (name[:-5], f"{done}.json")
    assert (requeued.params, requeued.attempts, requeued.result, requeued.reason) == (
        ["b"],
        [],
        None,
        None,
    )
    assert [h.action for h in requeued.history] == [] and requeued.next_attempt_at is None
    entry = intake.take(time.time(), lambda _e: True)
    assert entry is not None and (entry.name, entry.job_id, entry.attempt) == (
        name,
        name[:-5],
        1,
    )
    # Seen again (another runner, a restart): the same file is not requeued twice.
    Intake(spool).rescan()
    assert env.files("pending") == [name]


@pytest.mark.parametrize("which", ["older", "current"])
def test_a_replayed_sealed_copy_never_runs_while_its_job_runs(env: SpoolEnv, which: str) -> None:
    """Copies of the runner's own sealed records (pending/ is readable), dropped
    again while that job runs: an earlier state of the job, or the very record
    it was claimed from. Neither runs; the leftover sweep keeps the claim."""
    spool = Spool(env.spool)
    job_id = spool.submit(Job(job="Marker", method="touch", params=["a"]))
    name = f"{job_id}.json"
    copies = {}
    for attempt, reason in ((1, "older"), (2, "current")):
        claim = spool.claim(name, RunningName(job_id, "runner-a", attempt))
        assert claim is not None
        spool.finish(claim, Status.PENDING, spool.seal(spool.read_job(claim), {"reason": reason}))
        copies[reason] = (env.spool / "pending" / name).read_bytes()
    claim = spool.claim(name, RunningName(job_id, "runner-a", 3))
    assert claim is not None
    aged(Path(claim))  # claimed a while ago

    env.drop(name, copies[which])
    intake = Intake(spool)
    intake.rescan()

    assert not intake.has_ready(time.time()) and env.files("pending") == [name]
    aged(env.spool / "pending" / name)
    leftovers.resolve_duplicates(spool, min_age=0)
    assert os.path.exists(claim) and env.files("pending") == []
    assert spool.read_job(claim).reason == "current"


def test_a_runner_retry_clears_its_pending_name_of_a_dropped_file(env: SpoolEnv) -> None:
    """F5: a file dropped at pending/<id>.json while job <id> runs made the
    runner's own retry fail on EEXIST and go to corrupt/ with its attempts."""
    spool = Spool(env.spool)
    job_id = spool.submit(Job(job="Marker", method="touch", params=["a"]))
    claim = spool.claim(f"{job_id}.json", RunningName(job_id, "runner-a", 1))
    assert claim is not None
    doc = job_doc("Marker", "touch", ["dropped"], revision=99)
    env.drop(f"{job_id}.json", doc)

    spool.finish(claim, Status.PENDING, spool.seal(spool.read_job(claim), {"reason": "ours"}))

    retried = spool.load(env.spool / "pending" / f"{job_id}.json")
    assert retried.sealed and retried.job.reason == "ours"
    assert env.files("running") == []
    (kept,) = [n for n in corrupt_entries(env) if not n.endswith(".reason.txt")]
    assert (env.spool / "corrupt" / kept).read_bytes() == doc.encode()


def test_a_seal_is_believed_only_on_its_own_bytes_and_its_own_id(env: SpoolEnv) -> None:
    spool = Spool(env.spool)
    key = env.spool / sealing.KEY_NAME
    assert stat.S_IMODE(os.lstat(key).st_mode) == 0o600
    record = Job(
        job="Marker", method="touch", params=["a"], id="sealed", attempt_base=5, reason="sealed"
    )
    data = spool.seal(record).data
    pending = env.spool / "pending"
    cases = {
        "sealed.json": data,
        "edited.json": data.replace(b'"a"', b'"b"').replace(b'"sealed"', b'"edited"', 1),
        "other.json": data,  # the very bytes, under another job's name
    }
    for name, content in cases.items():
        (pending / name).write_bytes(content)
    loaded = {name: spool.load(pending / name) for name in cases}
    assert loaded["sealed.json"].sealed and loaded["sealed.json"].job.attempt_base == 5
    for name in ("edited.json", "other.json"):
        assert not loaded[name].sealed
        assert (loaded[name].job.attempt_base, loaded[name].job.reason) == (0, None)
        assert set(loaded[name].ignored) == {"attempt_base", "reason"}


class _Hooked(FileOps):
    """Real file operations; ``before_unlink`` runs just before each unlink."""

    before_unlink: Any = None

    def unlink(self, path: StrPath) -> None:
        if self.before_unlink is not None:
            self.before_unlink(path)
        super().unlink(path)


def test_a_retry_seen_between_its_link_and_unlink_keeps_its_id(env: SpoolEnv) -> None:
    """A runner publishes a retry by link into pending/, then unlink of its claim:
    the watcher may deliver the pending file while the claim is still there."""
    ops = _Hooked()
    spool = Spool(env.spool, ops=ops)
    job_id = spool.submit(Job(job="Marker", method="touch", params=["a"]))
    claim = spool.claim(f"{job_id}.json", RunningName(job_id, "runner-a", 1))
    assert claim is not None
    record = spool.read_job(claim)
    intake = Intake(Spool(env.spool))
    seen: list[list[str]] = []

    def deliver(path: StrPath) -> None:
        seen.append(sorted(os.listdir(env.spool / "running")))
        intake.file_appeared(f"{job_id}.json")

    ops.before_unlink = deliver
    spool.finish(claim, Status.PENDING, spool.seal(record, {"reason": "retry in 0s"}))

    assert seen and seen[0], "the claim was gone before the pending file was delivered"
    entry = intake.take(time.time(), lambda _e: True)
    assert entry is not None and (entry.job_id, entry.name) == (job_id, f"{job_id}.json")
    assert env.files("pending") == [f"{job_id}.json"]


def test_a_person_retry_seen_in_its_instant_keeps_its_id(env: SpoolEnv) -> None:
    ops = _Hooked()
    spool = Spool(env.spool, ops=ops)
    job_id = spool.submit(Job(job="Marker", method="touch", params=["a"]))
    claim = spool.claim(f"{job_id}.json", RunningName(job_id, "runner-a", 1))
    assert claim is not None
    spool.finish(claim, Status.FAILED, spool.seal(spool.read_job(claim), {"reason": "no"}))
    intake = Intake(Spool(env.spool))
    ops.before_unlink = lambda _p: intake.file_appeared(f"{job_id}.json")

    actions.retry(spool, job_id, by="person")

    def looked_again() -> bool:
        intake.run_rechecks(time.monotonic())
        return intake.has_ready(time.time())

    wait_until(looked_again, what="the retried job to be scheduled")

    entry = intake.take(time.time(), lambda _e: True)
    assert entry is not None and (entry.job_id, entry.name) == (job_id, f"{job_id}.json")
    assert env.files("pending") == [f"{job_id}.json"]


# ---------------------------------------------------------------- F6: policy


def test_attempt_base_from_a_producer_cannot_reset_the_attempt_count(env: SpoolEnv) -> None:
    """F6: "attempt_base": 1000000 let a crashing job with max_attempts 2 run on and on."""
    env.drop("crash.json", job_doc("Failing", "crash", [], attempt_base=1_000_000))
    runner = env.start_runner()
    record = env.wait_status("crash", "failed")
    assert outcomes(record) == ["crashed", "crashed"]
    assert record["attempt_base"] == 0
    stop_clean(runner)


def test_max_attempts_above_the_allow_list_is_capped(env: SpoolEnv) -> None:
    env.drop("crash.json", job_doc("Failing", "crash", [], max_attempts=100))
    out = env.burst()
    assert out.returncode == 0, out.stderr
    assert outcomes(env.record("failed", "crash")) == ["crashed", "crashed"]


def test_timeout_above_the_allow_list_is_capped(env: SpoolEnv, tmp_path: Path) -> None:
    """F6: "timeout_seconds": 1e308 outlived the allow-list's timeout; a lower
    max_attempts is the producer's to choose."""
    sleeper = {**TEST_JOBS["Sleeper"], "timeout_seconds": 1}
    env.write_config(allowed_jobs={**TEST_JOBS, "Sleeper": sleeper})
    doc = job_doc("Sleeper", "sleep", [30], timeout_seconds=1e308, max_attempts=1)
    env.drop("long.json", doc)
    runner = env.start_runner()
    record = env.wait_status("long", "failed")
    assert outcomes(record) == ["timed_out"]
    assert record["attempts"][0]["error"]["type"] == "Timeout"
    stop_clean(runner)


def test_bookkeeping_from_a_producer_is_ignored(env: SpoolEnv, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    env.drop("forged.json", job_doc("Marker", "touch", [str(marker)], **forged_bookkeeping()))
    out = env.burst()
    assert out.returncode == 0, out.stderr
    record = env.record("completed", "forged")
    assert marker.read_text() == "ran"
    assert [(a["number"], a["outcome"]) for a in record["attempts"]] == [(1, "succeeded")]
    assert (record["result"], record["error"], record["reason"]) == ("ran", None, None)
    assert record["progress"] is None and record["original_name"] is None
    assert "retried" not in [h["action"] for h in record["history"]]
    assert "fields_ignored" in (env.spool / "logs" / "background_jobs.log").read_text()


def test_submit_refuses_overrides_above_the_allow_list(env: SpoolEnv) -> None:
    cfg = config(env)
    with pytest.raises(InvalidParams, match="allow-list"):
        run_background_job("Failing", "crash", [], max_attempts=3, config=cfg)
    with pytest.raises(InvalidParams, match="allow-list"):
        run_background_job("Sleeper", "sleep", [0], timeout=1e308, config=cfg)
    out = env.runjob("Sleeper", "sleep", "0", "--timeout", "31")
    assert_one_line_error(out, "runjob", "allow-list")
    assert env.files("pending") == []
    lowered = run_background_job("Failing", "crash", [], max_attempts=1, timeout=5, config=cfg)
    assert env.record("pending", lowered)["max_attempts"] == 1


# ---------------------------------------------------------------- F10: size


def nested_doc(size: int, depth: int = 50) -> bytes:
    """A job file of about size bytes whose one param nests depth levels, many times."""
    leaf = "[" * depth + "]" * depth
    head = '{"job": "SampleJob", "method": "process", "params": [['
    count = max(1, (size - len(head) - 4) // (len(leaf) + 1))
    return (head + ",".join([leaf] * count) + "]]}").encode()


def test_a_record_over_the_cap_is_refused_before_it_is_built(tmp_path: Path) -> None:
    """F10: 1 MB of nested params made the runner build a record of many MB."""
    spool = Spool(tmp_path / "spool")
    job = codec.decode_job(nested_doc(spool.max_job_bytes - 100))
    job = job.model_copy(update={"id": "nested", "result": job.params})
    tracemalloc.start()
    try:
        with pytest.raises(InvalidJobFile, match="cap"):
            spool.seal(job)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * spool.max_job_bytes, f"{peak} bytes allocated to refuse it"


def test_a_job_with_deeply_nested_params_completes(env: SpoolEnv) -> None:
    """A 200 KB file nesting 50 levels: its record, with the same value as its
    result, is far under the cap; it was refused as many megabytes."""
    env.drop("deep.json", nested_doc(200_000))
    out = env.burst()
    assert out.returncode == 0, out.stderr
    record = env.record("completed", "deep")
    assert record["result"]["processed"] == record["params"]
    assert os.path.getsize(env.spool / "completed" / "deep.json") < 500_000


def test_a_record_that_cannot_fit_is_kept_in_corrupt_with_its_reason(env: SpoolEnv) -> None:
    env.write_config(max_job_bytes=64 * 1024)
    env.drop("big.json", nested_doc(60 * 1024))
    env.drop("small.json", job_doc("SampleJob", "process", ["p1"]))
    out = env.burst()
    assert out.returncode == 0, out.stderr
    assert env.record("completed", "small")["result"]["count"] == 1
    assert env.files("completed") == ["small.json"]
    reasons = [n for n in corrupt_entries(env) if n.endswith(".reason.txt")]
    assert len(reasons) == 1, corrupt_entries(env)
    text = (env.spool / "corrupt" / reasons[0]).read_text()
    assert "big" in text and "cap" in text, text
