"""Retention: which finished jobs are due for removal (pure, no I/O).

Owns the meaning of a retention setting (an age such as ``7d``, or ``keep``)
and the one rule that says whether a finished job is due: its age, counted
from when it finished, is at least its status's retention. ``now`` is always
passed in, so the rule is tested with an injected clock.

When a job finished is the modification time of its record's file. A
finished record is written exactly once, by the link that publishes the
job's final state (a person's retry, and the finish after it, write a new
file), so that time is when the job finished, within the moment it took
to publish. It is what a directory listing gives without opening a file:
deciding over 100,000 jobs reads no record. The record's own times
(``finished_at`` of its attempts, its history) are never earlier, so they
could only make a job due sooner; a copy of a spool made without keeping
modification times keeps its jobs longer, never shorter. Across hosts the
time is the writer's (or the file server's) clock against the purger's:
skew shifts removal by the skew, minutes against retentions of days.

Invariants: a status whose retention is ``keep`` (None) is never due; only
completed, failed and cancelled jobs are ever due; an age that cannot be
read is refused with one line naming what is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobspool import durations
from jobspool.states import TERMINAL, Status

KEEP = "keep"
# Ten years: far beyond any useful retention, and far below a float's range.
MAX_AGE_SECONDS = 10 * 365 * 86400.0

# Retention per terminal status in seconds; None keeps that status forever.
Policy = dict[Status, float | None]


def parse_age(value: object) -> float | None:
    """Seconds for "30d", "12h", "90m", "45s", "2w" or a bare number of
    seconds (``jobspool.durations``); None for "keep". ValueError (one line)
    for anything else."""
    if isinstance(value, str) and value.strip().lower() == KEEP:
        return None
    length = durations.seconds(value)
    if length is None:
        raise ValueError(f"{value!r} is not an age; use e.g. 7d, 12h, 30m, 45s or keep")
    if not 0 <= length <= MAX_AGE_SECONDS:
        raise ValueError(f"{value!r} is out of range (0 to 10 years, or keep)")
    return length


def show_age(seconds: float | None) -> str:
    """The shortest exact spelling of an age ("7d", "90m"), or "keep"."""
    return KEEP if seconds is None else durations.spell(seconds)


def is_due(status: Status, finished: float, policy: Policy, now: float) -> bool:
    """The rule: a finished job is due once its age reaches its status's retention."""
    keep = policy.get(status) if status in TERMINAL else None
    return keep is not None and now - finished >= keep


@dataclass(frozen=True, slots=True)
class Candidate:
    """One finished job file as a purge sees it."""

    status: Status
    name: str  # the file name in its status directory
    job: str | None  # the allow-list name it ran as, when its record was read
    finished: float  # the modification time of its record


def select(
    candidates: list[Candidate], policy: Policy, now: float, *, job: str | None = None
) -> list[Candidate]:
    """The candidates due under policy at now (only those of ``job``, when given)."""
    return [
        c
        for c in candidates
        if (job is None or c.job == job) and is_due(c.status, c.finished, policy, now)
    ]
