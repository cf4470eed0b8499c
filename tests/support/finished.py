"""Finished jobs made for the retention and purge tests, through the spool's own moves.

Each job's record is what a runner publishes for a finished job (one
attempt, finished at the time asked for), and its file's mtime is set to
match; its side files are written too: the log, a progress file and a
cancel request.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from jobspool import control, progress, purgesummary
from jobspool.model import Attempt, ErrorInfo, HistoryEntry, Job, Outcome
from jobspool.names import hostname, new_id
from jobspool.purge import AREA
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import wait_until

OUTCOME = {
    Status.COMPLETED: Outcome.SUCCEEDED,
    Status.FAILED: Outcome.FAILED,
    Status.CANCELLED: Outcome.CANCELLED,
}


def make_finished(
    spool: Spool,
    status: Status,
    finished: float,
    *,
    job: str = "SampleJob",
    side_files: bool = True,
) -> str:
    """A job finished ``finished`` (POSIX time) in ``status``; returns its id.

    The record is published straight into its status directory (tmp/, then a
    link), never through pending/: runners at work on the spool would claim
    it there."""
    job_id = new_id()
    when = datetime.fromtimestamp(finished, UTC)
    error = None if status is Status.COMPLETED else ErrorInfo(type="E", message="planned")
    attempt = Attempt(
        number=1,
        runner="test-runner",
        host=hostname(),
        started_at=when,
        finished_at=when,
        outcome=OUTCOME[status],
        error=error,
    )
    record = Job(
        id=job_id,
        job=job,
        method="process",
        params=["x"],
        created_at=when,
        revision=3,
        attempts=[attempt],
        history=[HistoryEntry(at=when, action="submitted")],
    )
    tmp = spool.write_tmp(spool.encode(record), job_id)
    dst = spool.path_in(status, f"{job_id}.json")
    spool.ops.link(tmp, dst)
    spool.ops.unlink(tmp)
    spool.sync_dir(spool.dir(status))
    os.utime(dst, (finished, finished))
    if side_files:
        write_side_files(spool, job_id)
    return job_id


def write_side_files(spool: Spool, job_id: str) -> None:
    Path(spool.job_log_file(job_id)).write_text(f"log of {job_id}\n")
    progress.progress_path(spool, job_id).write_text('{"fraction": 1.0}')
    control.request(spool, control.CANCEL, job_id, by="test")


def side_files(spool: Spool, job_id: str) -> dict[str, bool]:
    """Which of the job's side files exist."""
    return {
        "log": os.path.lexists(spool.job_log_file(job_id)),
        "progress": os.path.lexists(progress.progress_path(spool, job_id)),
        "cancel": os.path.lexists(spool.dir("control") / f"cancel~{job_id}.json"),
    }


def where(spool: Spool, job_id: str) -> list[str]:
    """Every place the job's record is: status directories and the purge area."""
    found = [s.value for s in Status if os.path.lexists(spool.path_in(s, f"{job_id}.json"))]
    found += [f"running/{n}" for n in spool.names(Status.RUNNING) if n.startswith(f"{job_id}~")]
    area = spool.root / AREA
    if area.is_dir():
        found += [f"purge/{n}" for n in os.listdir(area) if n.endswith(f"~{job_id}.json")]
    return found


def whole_or_gone(spool: Spool, job_id: str) -> str | None:
    """A problem if the job is half removed: a record without its log, or a log
    without a record; "staged" jobs (in the purge area) are still whole."""
    places = where(spool, job_id)
    has_log = os.path.lexists(spool.job_log_file(job_id))
    if len(places) > 1:
        return f"{job_id} is in {places}"
    if places and not has_log:
        return f"{job_id} is in {places} but its log is gone"
    if not places and has_log:
        return f"{job_id} is gone but its log is left"
    return None


def summary(spool: Spool, timeout: float = 10.0) -> purgesummary.Summary:
    """The purge summary, once there is one."""
    found = wait_until(lambda: purgesummary.read(spool), timeout, "the purge summary")
    assert found is not None
    return found
