"""Steering jobs from Python: cancel, retry, resubmit, list, pause and resume.

Owns the Python face of what ``jobspool cancel``, ``jobspool retry`` and
``jobspool list`` do. The config and the spool are found as
:func:`jobspool.submit.run_background_job` finds them; the actions
themselves are :mod:`jobspool.actions` (a person's moves of the protocol), so
a race with a runner or another person ends in exactly one outcome and the
loser gets :class:`jobspool.errors.Conflict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobspool import actions, pauses
from jobspool.config import Config
from jobspool.errors import InvalidParams
from jobspool.model import JobView, utcnow
from jobspool.names import default_actor
from jobspool.spool import Spool
from jobspool.states import Status
from jobspool.submit import open_spool, resolve_config


def _spool(config: Config | str | None, spool: str | None) -> Spool:
    return open_spool(resolve_config(config, spool))


def cancel_job(
    job_id: str,
    *,
    config: Config | str | None = None,
    spool: str | None = None,
    by: str | None = None,
    via: str = "python",
) -> str:
    """Cancel a pending job at once, or ask its runner to stop a running one.

    Returns "cancelled" or "requested"; JobNotFound if there is no such job,
    Conflict if it has finished.
    """
    return actions.cancel(_spool(config, spool), job_id, by=by or default_actor(), via=via)


def retry_job(
    job_id: str,
    *,
    config: Config | str | None = None,
    spool: str | None = None,
    by: str | None = None,
    via: str = "python",
) -> JobView:
    """Send a failed or cancelled job back to pending with fresh attempts.

    Returns its pending view; JobNotFound or Conflict as for cancel_job.
    """
    return actions.retry(_spool(config, spool), job_id, by=by or default_actor(), via=via)


def resubmit_job(
    job_id: str,
    params: list[Any] | dict[str, Any],
    *,
    config: Config | str | None = None,
    spool: str | None = None,
    by: str | None = None,
    via: str = "python",
) -> JobView:
    """Queue a new job like a failed or cancelled one, with edited params.

    The params are validated as ``run_background_job`` validates them
    (InvalidParams or NotAllowed, nothing written); the new job's history
    says which job it was resubmitted from. Returns the new job's view;
    JobNotFound or Conflict as for cancel_job.
    """
    cfg = resolve_config(config, spool)
    return actions.resubmit(
        open_spool(cfg), job_id, params, config=cfg, by=by or default_actor(), via=via
    )


# Not a directory: the pending jobs that are not yet due (delayed by their
# producer, or waiting for their next attempt), listed by when they are due.
SCHEDULED = "scheduled"


@dataclass(frozen=True)
class Selection:
    """What a listing covers: whole statuses, or the scheduled part of pending."""

    statuses: tuple[Status, ...]
    scheduled_only: bool = False


def parse_status(status: str | Status | None) -> Selection:
    """The statuses a listing covers: the one asked for, or all of them."""
    if status is None:
        return Selection(tuple(Status))
    if status == SCHEDULED:
        return Selection((Status.PENDING,), scheduled_only=True)
    try:
        return Selection((Status(status),))
    except ValueError:
        known = ", ".join([*(s.value for s in Status), SCHEDULED])
        raise InvalidParams(f"unknown status {status!r}; one of: {known}") from None


def jobs_in(
    spool: Spool, selection: Selection, limit: int, now: datetime | None = None
) -> list[JobView]:
    """At most limit jobs, status by status: pending as a runner takes them,
    the others newest first (what ``jobspool list`` shows); scheduled jobs
    soonest due first."""
    if limit < 0:
        raise InvalidParams("limit must be zero or more")
    if selection.scheduled_only:
        return scheduled(spool, now or utcnow())[:limit]
    views: list[JobView] = []
    for status in selection.statuses:
        if len(views) >= limit:
            break
        if status is Status.PENDING:
            views += spool.pending_in_order()[:limit]
        else:
            views += spool.list_jobs(status, limit=limit)
    return views[:limit]


def scheduled(spool: Spool, now: datetime) -> list[JobView]:
    """Pending jobs not yet due, soonest first."""
    waiting: list[tuple[datetime, JobView]] = []
    for view in spool.pending_in_order():
        due = view.record.waiting_until(now)
        if due is not None:
            waiting.append((due, view))
    waiting.sort(key=lambda pair: pair[0])
    return [view for _, view in waiting]


def list_jobs(
    *,
    status: str | Status | None = None,
    limit: int = 50,
    config: Config | str | None = None,
    spool: str | None = None,
) -> list[JobView]:
    """Jobs in the spool, as ``jobspool list [--status S] [--limit N]`` shows them."""
    return jobs_in(_spool(config, spool), parse_status(status), limit)


def pause_jobs(
    names: Sequence[str] = (),
    *,
    config: Config | str | None = None,
    spool: str | None = None,
    by: str | None = None,
    via: str = "python",
) -> None:
    """Pause these job names (allow-list keys), or the whole spool with none.

    Paused jobs stay pending (new ones still queue); running attempts
    finish. NotAllowed, naming the closest allowed name, for an unknown one."""
    cfg = resolve_config(config, spool)
    checked = pauses.check_names(cfg, names)
    pauses.pause(open_spool(cfg), checked, by=by or default_actor(), via=via)


def resume_jobs(
    names: Sequence[str] = (),
    *,
    config: Config | str | None = None,
    spool: str | None = None,
) -> None:
    """Lift the pauses of these job names, or the whole spool's with none."""
    cfg = resolve_config(config, spool)
    pauses.resume(open_spool(cfg), pauses.check_names(cfg, names))


def paused(*, config: Config | str | None = None, spool: str | None = None) -> pauses.Pauses:
    """What is paused: ``.spool_paused``, ``.names``, who and when in ``.by_name``."""
    return pauses.current(_spool(config, spool))
