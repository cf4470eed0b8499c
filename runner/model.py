"""The job record and its parts, as pydantic models (no I/O).

A job file is one JSON object that validates as :class:`Job`; unknown fields
are rejected so a typo never silently drops a setting. Times are timezone-aware
UTC datetimes; a naive time in a hand-written file is taken as UTC. The record
grows only by appending attempts and history entries: nothing here deletes
what an earlier attempt or person recorded.

Who may set what (:func:`as_submitted`): a producer writes the job itself
(``job``, ``method``, ``params``, ``id`` through the file's name, ``priority``,
``not_before``, ``created_at``, ``submitted_by``, ``unique``) and may lower, never raise,
the allow-list's ``max_attempts`` and ``timeout_seconds`` (the runner applies
the lower of the two). Everything in :data:`BOOKKEEPING` is the runner's
record of what happened; in a record without the runner's seal it is
ignored, never refused, so that a record copied back into pending/ by hand
runs as the new submission it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from jobspool import outcomes

# Re-exported (the "as" form): the patterns live in jobspool.ids, which
# loads without pydantic; most of the engine imports them from here.
from jobspool.ids import ID_PATTERN as ID_PATTERN  # noqa: PLC0414
from jobspool.ids import NAME_PATTERN as NAME_PATTERN  # noqa: PLC0414
from jobspool.ids import is_valid_id as is_valid_id  # noqa: PLC0414

N = TypeVar("N", int, float)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date is outside the range of the calendar") from None


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def aware_time(text: str) -> datetime:
    """An ISO time that names its zone, in UTC; ValueError saying what is wrong.

    For what runners read from each other (heartbeats, control requests):
    unlike a hand-written job file, a time there without a zone is refused,
    never guessed."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not an ISO time") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("has no time zone")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the calendar") from None


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_timestamp(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Outcome(StrEnum):
    """How one attempt ended (the names and what each means: ``outcomes``)."""

    SUCCEEDED = outcomes.SUCCEEDED
    FAILED = outcomes.FAILED
    RETRY = outcomes.RETRY
    TIMED_OUT = outcomes.TIMED_OUT
    CRASHED = outcomes.CRASHED
    REJECTED = outcomes.REJECTED
    CANCELLED = outcomes.CANCELLED
    LOST = outcomes.LOST
    HANDED_BACK = outcomes.HANDED_BACK


class ErrorInfo(_Strict):
    type: str
    message: str
    traceback: str | None = None


class Attempt(_Strict):
    number: int
    runner: str
    host: str
    pid: int | None = None
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    duration_seconds: float | None = None
    outcome: Outcome
    exit_code: int | None = None
    signal: int | None = None
    error: ErrorInfo | None = None


class Progress(_Strict):
    fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    message: str | None = None
    updated_at: UtcDatetime | None = None


class HistoryEntry(_Strict):
    at: UtcDatetime
    action: str
    by: str | None = None
    via: str | None = None
    note: str | None = None


class Unique(_Strict):
    """A job's unique key as submitted: the filled key, its window and bound
    (the rules: :mod:`jobspool.uniquekey`; the lock: :mod:`jobspool.unique`)."""

    key: str = Field(min_length=1, max_length=200)
    until: Literal["queued", "started", "finished"] = "finished"
    for_seconds: int = Field(default=3600, ge=1, le=30 * 86400)


class Job(_Strict):
    """One job file. Three fields are required; the runner fills the rest."""

    job: str
    method: str
    params: list[Any] | dict[str, Any] = Field(default_factory=list)
    id: str | None = None
    version: Literal[1] = 1
    priority: int = 0
    not_before: UtcDatetime | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    timeout_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    created_at: UtcDatetime | None = None
    submitted_by: str | None = None
    unique: Unique | None = None
    original_name: str | None = None
    revision: int = 0
    attempts: list[Attempt] = Field(default_factory=list)
    # Attempts before this index were spent before a person retried the job;
    # they stay for the record but do not count against max_attempts.
    attempt_base: int = 0
    next_attempt_at: UtcDatetime | None = None
    result: Any = None
    error: ErrorInfo | None = None
    reason: str | None = None
    progress: Progress | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    # The seal a record file ends with (jobspool.sealing), as read: part of
    # the file's schema, so any reader of a record accepts it. It proves
    # nothing here (the spool checks it on the bytes as read) and is never
    # written from the model: the spool seals the bytes it publishes.
    seal: str | None = Field(default=None, exclude=True, pattern=r"^[0-9a-f]{64}$")

    @property
    def attempts_used(self) -> int:
        """Attempts that count against max_attempts (a hand-back does not)."""
        counted = self.attempts[self.attempt_base :]
        return sum(1 for a in counted if a.outcome is not Outcome.HANDED_BACK)

    def due_at(self) -> datetime | None:
        """When the job may next start; None means now."""
        times = [t for t in (self.not_before, self.next_attempt_at) if t is not None]
        return max(times) if times else None

    def waiting_until(self, now: datetime) -> datetime | None:
        """When a pending job becomes due, if that is still ahead of now.

        Such a job is "scheduled" (delayed by its producer, or waiting for
        its next attempt) rather than ready: readers show it apart, and it
        does not count as queued work that is late."""
        due = self.due_at()
        return due if due is not None and due > now else None

    def waiting_kind(self, now: datetime) -> Literal["retrying", "scheduled"] | None:
        """What a pending job that is not yet due waits for: its next attempt
        ("retrying"), or the time its producer set ("scheduled"); None when due."""
        if self.waiting_until(now) is None:
            return None
        retry_at = self.next_attempt_at
        return "retrying" if retry_at is not None and retry_at > now else "scheduled"

    def sort_key(self) -> tuple[int, datetime, str]:
        created = self.created_at or datetime.min.replace(tzinfo=UTC)
        return (-self.priority, created, self.id or "")


# The runner's record of what happened to a job, and why each is not a
# producer's to write: attempts, their count and their numbers (attempt_base,
# what max_attempts is counted against); when the next attempt is due
# (next_attempt_at; a producer delays with not_before); what an attempt
# found (result, error, reason, progress); what people did (history, but for
# the producer's own "submitted" entry, which says no more than
# submitted_by); and the name the runner found the file under
# (original_name). ``revision`` is kept: it only orders copies of the same
# id, and an unsealed copy is never ranked above a sealed one
# (jobspool.leftovers).
BOOKKEEPING: dict[str, Any] = {
    "attempts": [],
    "attempt_base": 0,
    "next_attempt_at": None,
    "result": None,
    "error": None,
    "reason": None,
    "progress": None,
    "original_name": None,
}
SUBMITTED = "submitted"


def within(asked: N | None, allowed: N) -> N:
    """A per-job override of the allow-list: it may lower, never raise."""
    return allowed if asked is None else min(asked, allowed)


def as_submitted(job: Job) -> tuple[Job, list[str]]:
    """The job as its producer may have asked for it: every bookkeeping field
    back to its default. Returns the job and the names of the fields ignored."""
    ignored = [name for name, empty in BOOKKEEPING.items() if getattr(job, name) != empty]
    own = [h for h in job.history if h.action == SUBMITTED][:1]
    if own != job.history:
        ignored.append("history")
    if not ignored:
        return job, []
    return job.model_copy(update={**BOOKKEEPING, "attempts": [], "history": own}), ignored


class JobView(BaseModel):
    """A job as readers see it: the record plus where it is."""

    model_config = ConfigDict(extra="forbid")

    status: str
    record: Job
    path: str

    @property
    def id(self) -> str:
        return self.record.id or ""

    def to_public(self) -> dict[str, Any]:
        """The JSON shape of CLI ``--json`` and the dashboard API."""
        data = self.record.model_dump(mode="json")
        data["status"] = self.status
        return data
