"""Recurring schedules: their settings and which ticks are due (pure, no I/O).

Owns the ``schedules:`` entries of allowed_jobs.yaml (:class:`ScheduleSpec`),
the instants a schedule fires at (:class:`Rule`: a five-field cron
expression in a time zone, evaluated by cronsim, or an ``every:`` interval
aligned to the Unix epoch), and the one rule that says which ticks are due
at an instant (:func:`due_ticks`). ``now`` is always passed in.

A tick is a schedule's name plus an instant in UTC; every runner on every
host computes the same ticks from the same settings, which is what lets
them agree on a tick without talking to each other (:mod:`jobspool.ticks`
settles who queues its job).

Invariants:

* ticks are whole seconds in UTC, and a cron tick is what cronsim yields,
  which follows Debian cron across daylight-saving changes: a local time
  skipped by a spring-forward fires once, right after the gap; a local time
  repeated by a fall-back fires once, at its first occurrence (for fixed
  times; an expression with ``*`` in its minute or hour fires by the clock);
* ``every:`` ticks are the multiples of the interval since the epoch, in any
  zone: ``every: 1d`` fires at 00:00 UTC;
* due ticks are always later than ``after`` (what is already settled) and
  than ``now - catch_up``, never later than ``now``, oldest first, and at
  most ``limit`` of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from jobspool import durations

# Schedule names sit inside file and job-id names.
SCHEDULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# A tick later than this is never caught up (it bounds the work of a start).
MAX_CATCH_UP = 7 * 86400
# With ``missed: skip`` a tick still fires when a runner gets to it this late.
ON_TIME_SECONDS = 60.0
# Ticks handed out per call: a long catch-up goes on at the next step.
DUE_LIMIT = 200
STAMP = "%Y%m%dT%H%M%SZ"


def parse_duration(value: object) -> int:
    """Whole seconds for 30s, 5m, 1h, 1d or a bare number of seconds
    (``jobspool.durations``); ValueError (one line, with the accepted forms)
    for anything else."""
    # Whole numbers of units only: a tick every 1.5h is written 90m.
    whole = not isinstance(value, float | str) or "." not in str(value)
    length = durations.seconds(value) if whole else None
    if length is None or not length.is_integer():
        raise ValueError(f"{value!r} is not a duration; use e.g. 30s, 5m, 1h or 1d")
    if length <= 0:
        raise ValueError(f"{value!r} is not a duration of at least one second")
    return int(length)


def show_duration(seconds: int) -> str:
    return durations.spell(seconds, "dhm")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a time zone; use an IANA name such as UTC or Europe/Berlin"
        ) from None


def _cron(expr: str) -> str:
    if len(expr.split()) != 5:
        raise ValueError(
            f"{expr!r} is not a cron expression of five fields "
            "(minute hour day-of-month month day-of-week), e.g. '30 2 * * *'"
        )
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"{expr!r} is not a valid cron expression: {exc}") from None
    return expr


def _zone_name(name: str) -> str:
    _zone(name)
    return name


def _catch_up(seconds: int) -> int:
    if seconds > MAX_CATCH_UP:
        raise ValueError(f"catch_up is at most {show_duration(MAX_CATCH_UP)}")
    return seconds


Duration = Annotated[int, BeforeValidator(parse_duration)]


class ScheduleSpec(BaseModel):
    """One entry of ``schedules:``."""

    model_config = ConfigDict(extra="forbid")

    job: str
    method: str
    params: list[object] | dict[str, object] = Field(default_factory=list)
    cron: Annotated[str, AfterValidator(_cron)] | None = None
    every: Duration | None = None
    timezone: Annotated[str, AfterValidator(_zone_name)] = "UTC"
    missed: Literal["skip", "latest", "all"] = "latest"
    catch_up: Annotated[Duration, AfterValidator(_catch_up)] = 3600
    overlap: Literal["skip", "allow"] = "skip"

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleSpec:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron (e.g. '30 2 * * *') or every (e.g. 30s)")
        return self

    def rule(self) -> Rule:
        return Rule(self.cron, self.every, self.timezone)

    def timing(self) -> tuple[str | None, int | None, str]:
        """What decides the instants: a change here takes effect from the next tick."""
        return (self.cron, self.every, self.timezone)


def check_name(name: str) -> None:
    if not SCHEDULE_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid schedule name "
            "(letters, digits, - and _, starting with a letter or digit, at most 64)"
        )


@dataclass(frozen=True)
class Rule:
    """When a schedule fires: cron in a zone, or every N seconds from the epoch."""

    cron: str | None
    every: int | None
    timezone: str = "UTC"

    def after(self, start: datetime) -> Iterator[datetime]:
        """Ticks strictly after start (aware), in UTC, oldest first."""
        start = start.astimezone(UTC)
        if self.every is not None:
            period = self.every
            k = int(start.timestamp()) // period + 1
            while True:
                yield datetime.fromtimestamp(k * period, UTC)
                k += 1
        assert self.cron is not None
        # cronsim evaluates fixed times on the local wall clock: starting in a
        # repeated hour it may yield the hour's first pass, before start.
        for local in CronSim(self.cron, start.astimezone(_zone(self.timezone))):
            tick = local.astimezone(UTC)
            if tick > start:
                yield tick

    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def next_after(self, start: datetime) -> datetime | None:
        return next(self.after(start), None)

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Ticks t with start < t <= end, oldest first."""
        for tick in self.after(start):
            if tick > end:
                return
            yield tick

    def latest(self, start: datetime, end: datetime) -> datetime | None:
        """The newest tick t with start < t <= end."""
        if self.every is not None:
            newest = datetime.fromtimestamp(int(end.timestamp()) // self.every * self.every, UTC)
            return newest if newest > start else None
        found = None
        for found in self.between(start, end):  # noqa: B007 - the last one is wanted
            pass
        return found


def due_ticks(
    spec: ScheduleSpec,
    now: datetime,
    after: datetime | None,
    *,
    limit: int = DUE_LIMIT,
) -> list[datetime]:
    """The ticks to queue at ``now``, oldest first.

    ``after`` is the newest tick already settled (claimed by any runner, or
    passed over); nothing at or before it is due again. Of the ticks since,
    within ``catch_up``: ``all`` queues each; ``latest`` the newest only;
    ``skip`` the newest only if it is at most ``ON_TIME_SECONDS`` late.
    """
    rule = spec.rule()
    window = min(float(spec.catch_up), ON_TIME_SECONDS) if spec.missed == "skip" else spec.catch_up
    start = now - timedelta(seconds=window)
    if after is not None and after > start:
        start = after
    if spec.missed == "all":
        out = []
        for tick in rule.between(start, now):
            out.append(tick)
            if len(out) >= limit:
                break
        return out
    newest = rule.latest(start, now)
    return [] if newest is None else [newest]


def stamp(tick: datetime) -> str:
    """A tick as it appears in file names and job ids: 20261207T023000Z."""
    return tick.astimezone(UTC).strftime(STAMP)


def parse_stamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def tick_job_id(name: str, tick: datetime) -> str:
    """The id of the job a tick queues: the same on every runner."""
    return f"sched-{name}-{stamp(tick)}"


def run_now_id(name: str, fresh: str) -> str:
    """The id of a job queued by hand ("run now"): never a tick's id."""
    return f"run-{name}-{fresh}"
