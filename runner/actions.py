"""What a person can do to a job: cancel it, retry it, or resubmit it edited.

Owns the human actions, shared by the command line, the dashboard and
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

import re
from pathlib import Path
from typing import Any

from jobspool import control, unique
from jobspool.config import Config
from jobspool.errors import Conflict
from jobspool.model import SUBMITTED, HistoryEntry, Job, JobView, is_valid_id, utcnow
from jobspool.spool import Spool
from jobspool.states import Status

# The note on a resubmitted job's "submitted" history entry: the whole link
# between the two jobs (see resubmit).
RESUBMITTED_FROM = "resubmitted from "
_FROM = re.compile(re.escape(RESUBMITTED_FROM) + r"(\S+)")
RESUBMITTABLE = (Status.FAILED, Status.CANCELLED)


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
                unique.release(spool, job, Status.CANCELLED)
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
    # As published: the move raised the revision (spool invariant 9).
    written = job.model_copy(update={"revision": job.revision + 1})
    return JobView(status=Status.PENDING.value, record=written, path=str(path))


def resubmit(
    spool: Spool,
    job_id: str,
    params: list[Any] | dict[str, Any],
    *,
    config: Config,
    by: str | None = None,
    via: str | None = None,
) -> JobView:
    """Queue a new job like a failed or cancelled one, with edited params.

    The new job gets a new id and the old job's name, method, priority and
    per-job limits (``max_attempts``, ``timeout_seconds``); ``params`` are
    validated exactly as a submission's (:func:`jobspool.submit.validate`:
    InvalidParams or NotAllowed, nothing written), and the job is published
    by the path every submission takes (:func:`jobspool.submit.queue_job`,
    i.e. ``Spool.submit``). Conflict if the old job is not failed or
    cancelled; JobNotFound if there is none. Returns the new job's view.

    Where the link between the two jobs is recorded, and why there only:
    the old job's record is finished and is never rewritten. A completed
    record has no move at all and a failed one may only go back to pending
    (:data:`jobspool.states.TRANSITIONS`): every change to a record is a
    move that publishes a new revision, so "add a line to a failed job"
    would need a failed -> failed move the protocol does not have, and the
    terminal directories belong to the runner's user, which a submitter
    need not be. So the link is written on the new job alone, as the note
    of its own "submitted" history entry ("resubmitted from <old id>"):
    that entry is the one piece of history a producer's unsealed record
    keeps when a runner reads it (:func:`jobspool.model.as_submitted`), so
    it survives into every later revision. The old job's resubmissions are
    found by a query over the new records (:func:`resubmitted_from`; the
    dashboard's index keeps it per row).
    """
    from jobspool.submit import queue_job, validate

    view = spool.get(job_id)
    status = Status(view.status)
    if status not in RESUBMITTABLE:
        raise Conflict(
            f"job {job_id} is {status}; only failed or cancelled jobs can be resubmitted"
        )
    old = view.record
    validate(config, old.job, old.method, params)
    record = Job(
        job=old.job,
        method=old.method,
        params=params,
        priority=old.priority,
        max_attempts=old.max_attempts,
        timeout_seconds=old.timeout_seconds,
    )
    note = f"{RESUBMITTED_FROM}{view.id}"
    new_id = queue_job(config, spool, record, by=by, via=via or "python", note=note)
    if unique.is_existing(new_id):
        # A unique job whose key another job holds: nothing was written.
        raise Conflict(
            f"job {new_id} holds this job's unique key; nothing was resubmitted "
            "(resubmit once that job has left its window)"
        )
    found = spool.find(new_id)
    if found is not None:
        return found
    # Taken and moved on meanwhile, between two directories: what was published.
    return JobView(
        status=Status.PENDING.value, record=record.model_copy(update={"id": new_id}), path=""
    )


def resubmitted_from(job: Job) -> str | None:
    """The id of the job this one was resubmitted from (see :func:`resubmit`), if any."""
    for entry in job.history:
        if entry.action == SUBMITTED:
            return resubmitted_from_note(entry.note)
    return None


def resubmitted_from_note(note: str | None) -> str | None:
    """The old job's id, from the note of a "submitted" history entry."""
    found = _FROM.fullmatch(note or "")
    return found.group(1) if found and is_valid_id(found.group(1)) else None
