"""What a person can do to a job: cancel it or retry it.

Owns the two human actions, shared by the command line, the dashboard and
the runner (which carries out a cancel request for a job it handed back).
Both are ordinary moves of the protocol in :mod:`jobspool.spool`, so a
person racing a runner or another person gets exactly one outcome: the
loser is told by :class:`jobspool.errors.Conflict`, and nothing is half done
(invariants 2 and 4). Each action appends a history entry saying who did it
and from where. A running job is never moved from here: its runner owns the
claim (invariant 3), so cancelling it leaves a request in control/ (see
:mod:`jobspool.control`) that the owning runner carries out.
"""

from __future__ import annotations

from pathlib import Path

from jobspool import control
from jobspool.errors import Conflict
from jobspool.model import HistoryEntry, JobView, utcnow
from jobspool.spool import Spool
from jobspool.states import Status


def cancel(spool: Spool, job_id: str, *, by: str | None = None, via: str | None = None) -> str:
    """Cancel a pending job now, or ask the owning runner to stop a running one.

    Returns "cancelled" or "requested"; Conflict if the job is finished.
    """
    for _ in range(5):
        view = spool.get(job_id)
        status = Status(view.status)
        if status is Status.PENDING:
            entry = HistoryEntry(at=utcnow(), action="cancelled", by=by, via=via)
            job = view.record.model_copy(
                update={
                    "reason": "cancelled before it ran",
                    "history": [*view.record.history, entry],
                }
            )
            try:
                spool.move(Path(view.path), status, Status.CANCELLED, job)
                return "cancelled"
            except Conflict:
                continue  # a runner claimed it meanwhile: look again
        if status is Status.RUNNING:
            control.request(spool, control.CANCEL, job_id, by=by, via=via)
            return "requested"
        raise Conflict(f"job {job_id} is {status}; only pending or running jobs can be cancelled")
    raise Conflict(f"job {job_id} kept changing state; try again")


def retry(spool: Spool, job_id: str, *, by: str | None = None, via: str | None = None) -> JobView:
    """Send a failed or cancelled job back to pending/ with fresh attempts."""
    view = spool.get(job_id)
    status = Status(view.status)
    if status not in (Status.FAILED, Status.CANCELLED):
        raise Conflict(f"job {job_id} is {status}; only failed or cancelled jobs can be retried")
    rec = view.record
    job = rec.model_copy(
        update={
            "attempt_base": len(rec.attempts),
            "error": None,
            "reason": None,
            "result": None,
            "progress": None,
            "not_before": None,
            "next_attempt_at": None,
            "history": [
                *rec.history,
                HistoryEntry(at=utcnow(), action="retried", by=by, via=via),
            ],
        }
    )
    path = spool.move(Path(view.path), status, Status.PENDING, job)
    control.clear_request(spool, "cancel", job_id)
    return JobView(status=Status.PENDING.value, record=job, path=str(path))
