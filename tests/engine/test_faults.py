"""Fault injection: real OSErrors at chosen filesystem calls of submit, claim and finish.

The spool routes every filesystem call through a FileOps object; the tests
swap in one that raises OSError(errno) at a chosen call and otherwise does
the real thing. Checked after each fault: an unacknowledged submit leaves
nothing visible outside tmp/; a job whose finish fails stays in running/
(one copy, never lost), is retried with growing backoff, and completes once
the fault clears; a claim that fails leaves the job in pending/ to run later.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from jobspool import leftovers
from jobspool.config import load_config
from jobspool.daemon import Runner
from jobspool.fsops import FileOps
from jobspool.model import Job
from jobspool.spool import Spool
from tests.conftest import SpoolEnv
from tests.support.faults import CallRecorder, FailNthCall, FirstCallsFail, RunnerThread, in_dir
from tests.support.hostile import STATUSES, age

JOB_ID = "fin"


def visible(root: Path) -> dict[str, list[str]]:
    """Entries of every directory a reader looks at (all but tmp/)."""
    return {d: sorted(os.listdir(root / d)) for d in (*STATUSES, "corrupt")}


NOTHING: dict[str, list[str]] = {d: [] for d in (*STATUSES, "corrupt")}


def a_job(ledger: Path, job_id: str | None = None) -> Job:
    return Job(job="Ledger", method="record", params=[str(ledger)], id=job_id)


# ---------------------------------------------------------------- submit


def record_submit(tmp_path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """The calls one successful durable submit makes, in order."""
    spool = Spool(tmp_path / "probe")
    recorder = CallRecorder()
    spool.ops = recorder
    spool.submit(a_job(tmp_path / "ledger"))
    return recorder.calls


def _acknowledged_problem(
    spool: Spool, root: Path, where: str, raised: OSError | None, job_id: str
) -> str | None:
    """A submit that failed only after it was durable: the job stands, once."""
    if raised is not None:
        return f"{where}: a durable submit raised {raised!r}"
    if os.listdir(root / "pending") != [f"{job_id}.json"]:
        return f"{where}: the acknowledged job is not alone in pending/"
    spool.ops = FileOps()
    leftovers.clean_tmp(spool, 3600, linked_max_age=0)
    if os.listdir(root / "tmp"):
        return f"{where}: clean_tmp left the tmp twin {os.listdir(root / 'tmp')}"
    return None


def _submit_problem(root: Path, nth: int, code: int, acknowledged: bool) -> str | None:
    """Fail the nth call of a submit; None when the outcome is clean.

    A failing call must abort the submit and publish nothing, except the
    removal of the spare tmp name: the job is published whole either way,
    so that failure must not turn into an error (the caller would submit
    again and the job would run twice); the leftover twin is removed by
    clean_tmp.
    """
    spool = Spool(root)
    ops = FailNthCall(nth, code)
    spool.ops = ops
    try:
        job_id = spool.submit(a_job(root / "ledger"))
    except OSError as exc:
        raised: OSError | None = exc
    else:
        raised = None
    where = f"call {nth} ({ops.failed[0] if ops.failed else '?'}) {errno.errorcode[code]}"
    if acknowledged:
        return _acknowledged_problem(spool, root, where, raised, job_id if raised is None else "")
    if raised is None:
        return f"{where}: submit returned {job_id} although a call failed"
    if raised.errno != code:
        return f"{where}: raised errno {raised.errno}, not the injected one"
    if visible(root) != NOTHING:
        return f"{where}: submit raised but left {visible(root)}"
    # A tmp/ leftover is never published; clean_tmp removes it once old.
    spool.ops = FileOps()
    for name in os.listdir(root / "tmp"):
        age(root / "tmp" / name, 7200)
    leftovers.clean_tmp(spool, 3600)
    if os.listdir(root / "tmp"):
        return f"{where}: clean_tmp left {os.listdir(root / 'tmp')}"
    spool.submit(a_job(root / "ledger"))  # the spool is not wedged
    if len(os.listdir(root / "pending")) != 1:
        return f"{where}: a later submit did not publish exactly one file"
    return None


def test_submit_failing_before_it_is_durable_publishes_nothing(tmp_path: Path) -> None:
    calls = record_submit(tmp_path)
    ops = [op for op, _paths in calls]
    # The protocol as documented: write + fsync in tmp/, link, directory fsync.
    for needed in ("write_new", "write", "fsync", "close", "link", "fsync_dir"):
        assert needed in ops, ops
    assert ops.index("fsync") < ops.index("link") < ops.index("fsync_dir"), ops

    # The tmp name is dropped right after the link, before the directory fsync.
    assert ops.index("link") < ops.index("unlink_quiet") < ops.index("fsync_dir"), ops
    problems = []
    for code in (errno.ENOSPC, errno.EIO):
        for nth in range(1, len(calls) + 1):
            root = tmp_path / f"{errno.errorcode[code]}-{nth:02d}"
            # Failing to drop the spare tmp name does not fail the submit.
            spare = ops[nth - 1] == "unlink_quiet"
            problem = _submit_problem(root, nth, code, acknowledged=spare)
            if problem:
                problems.append(problem)
    assert problems == [], "\n".join([f"submit sequence: {ops}", *problems])


# ---------------------------------------------------------------- finish


class FinishFaults(FirstCallsFail):
    """Fails one operation of the job's finishing move; snapshots each finish attempt."""

    def __init__(self, spool_dir: Path, op: str, code: int, times: int) -> None:
        self.spool_dir = spool_dir
        self.op = op
        self.attempts: list[tuple[float, dict[str, list[str]]]] = []
        super().__init__(matches=self._matches, code=code, times=times)

    def _is_job_tmp(self, path: str) -> bool:
        return in_dir(path, str(self.spool_dir / "tmp")) and os.path.basename(path).startswith(
            f"{JOB_ID}."
        )

    def _matches(self, op: str, paths: tuple[str, ...]) -> bool:
        if op != self.op:
            return False
        if op in ("write", "fsync", "close"):
            return self._is_job_tmp(paths[0])
        if op == "link":
            return paths[1] == os.path.join(self.spool_dir, "completed", f"{JOB_ID}.json")
        if op == "fsync_dir":
            return os.path.realpath(paths[0]) == os.path.realpath(self.spool_dir / "completed")
        if op == "unlink":
            running = str(self.spool_dir / "running")
            return in_dir(paths[0], running) and os.path.basename(paths[0]).startswith(JOB_ID)
        raise AssertionError(f"no matcher for {op}")

    def before(self, op: str, *paths: str) -> None:
        # Every finishing move starts by writing the new record to tmp/.
        if op == "write_new" and self._is_job_tmp(paths[0]):
            self.attempts.append((time.monotonic(), visible(self.spool_dir)))
        super().before(op, *paths)


def finish_error_lines(spool_dir: Path) -> list[str]:
    log = spool_dir / "logs" / "background_jobs_errors.log"
    text = log.read_text() if log.exists() else ""
    return [line for line in text.splitlines() if " finish_error " in line]


def run_in_process(env: SpoolEnv, ops: FileOps, timeout: float = 40.0) -> None:
    runner = Runner(load_config(env.config), burst=True, watch=False)
    runner.spool.ops = ops
    assert RunnerThread(runner).start().join(timeout) == 0


# (operation, errno, failures): three failures show the backoff doubling
# 0.5 -> 1 -> 2 s; two keep the other cases quick.
FINISH_FAULTS = [
    pytest.param("link", errno.ENOSPC, 3, id="link-ENOSPC"),
    pytest.param("write", errno.ENOSPC, 2, id="write-ENOSPC"),
    pytest.param("fsync", errno.EIO, 2, id="fsync-EIO"),
    pytest.param("fsync_dir", errno.EIO, 2, id="fsync_dir-EIO"),
    pytest.param("unlink", errno.EIO, 2, id="unlink-EIO"),
]


@pytest.mark.parametrize(("op", "code", "failures"), FINISH_FAULTS)
def test_a_finish_that_fails_keeps_the_job_running_and_backs_off(
    env: SpoolEnv, tmp_path: Path, op: str, code: int, failures: int
) -> None:
    ledger = tmp_path / "ledger"
    Spool(env.spool).submit(a_job(ledger, JOB_ID))
    ops = FinishFaults(env.spool, op, code, failures)

    run_in_process(env, ops)

    # Before every try the job was in running/ only: never lost, never copied.
    for n, (_when, seen) in enumerate(ops.attempts, 1):
        running = seen["running"]
        assert len(running) == 1 and running[0].startswith(f"{JOB_ID}~"), (n, seen)
        assert {**seen, "running": []} == NOTHING, (n, seen)
    # Faulted exactly failures times, then let through; one move per try.
    assert len(ops.hits) == failures, [h.op for h in ops.hits]
    assert ops.passed >= 1
    assert len(ops.attempts) == failures + 1, [round(t, 2) for t, _ in ops.attempts]
    # Backoff doubles from 0.5 s: no hot loop.
    gaps = [b[0] - a[0] for a, b in zip(ops.attempts, ops.attempts[1:], strict=False)]
    for n, gap in enumerate(gaps):
        assert gap >= 0.5 * 2**n * 0.9, f"retry {n + 1} came after {gap:.2f}s: {gaps}"
    after = visible(env.spool)
    assert after == {**NOTHING, "completed": [f"{JOB_ID}.json"]}
    assert [line.split()[0] for line in ledger.read_text().splitlines()] == [JOB_ID]
    record = env.record("completed", JOB_ID)
    assert [a["outcome"] for a in record["attempts"]] == ["succeeded"]
    assert len(finish_error_lines(env.spool)) == failures
    assert [n for n in os.listdir(env.spool / "tmp") if n.startswith(JOB_ID)] == []


# ---------------------------------------------------------------- claim


def test_a_claim_rename_failing_with_eio_leaves_the_job_pending_to_run_later(
    env: SpoolEnv, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    Spool(env.spool).submit(a_job(ledger, JOB_ID))
    pending = str(env.spool / "pending")
    seen: list[dict[str, list[str]]] = []

    def is_claim(op: str, paths: tuple[str, ...]) -> bool:
        return op == "rename" and paths[0] == os.path.join(pending, f"{JOB_ID}.json")

    def look(_op: str, _paths: tuple[str, ...]) -> None:
        seen.append(visible(env.spool))

    ops = FirstCallsFail(matches=is_claim, code=errno.EIO, times=2, observe=look)

    run_in_process(env, ops)

    assert len(ops.hits) == 2
    assert ops.passed == 1, "claimed once after the faults"
    assert seen == [{**NOTHING, "pending": [f"{JOB_ID}.json"]}] * 3
    gaps = [b.at - a.at for a, b in zip(ops.hits, ops.hits[1:], strict=False)]
    assert all(gap >= 0.1 for gap in gaps), f"claim retried in a hot loop: {gaps}"
    assert visible(env.spool) == {**NOTHING, "completed": [f"{JOB_ID}.json"]}
    assert [line.split()[0] for line in ledger.read_text().splitlines()] == [JOB_ID]
    record = env.record("completed", JOB_ID)
    assert [(a["number"], a["outcome"]) for a in record["attempts"]] == [(1, "succeeded")]
