"""Statistics kept incrementally as job rows enter and leave the index (no I/O).

Owns the per-minute and per-hour completed/failed counts, success counts and
duration histograms per job name, and attempt totals per outcome. Every
figure is updated by :meth:`Aggregates.add` with sign +1 when a row enters
the index and -1 when it leaves, so a request never rescans the jobs.

Invariants:
* Adding a row and removing the same row leaves every figure as it was.
* Memory is bounded whatever the number of jobs: minute buckets older than
  ``minute_window`` and hour buckets older than ``hour_window`` are pruned
  and rows that old are not bucketed at all; a duration histogram is a fixed
  array per job name.
* Durations are bucketed on a log scale with eight buckets per doubling, so a
  reported percentile is within about 4.5 % of the true value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from jobspool.states import Status

# Attempt outcomes as one letter each, so a row stores its attempts as a short
# interned string ("fs": failed, then succeeded).
OUTCOME_CODES = {
    "succeeded": "s",
    "failed": "f",
    "retry": "r",
    "timed_out": "t",
    "crashed": "c",
    "rejected": "x",
    "cancelled": "k",
    "lost": "l",
    "handed_back": "h",
}
CODE_OUTCOMES = {code: name for name, code in OUTCOME_CODES.items()}

HIST_BASE = 0.001  # upper bound of bucket 0, seconds
HIST_PER_DOUBLING = 8
HIST_RATIO = 2.0 ** (1.0 / HIST_PER_DOUBLING)
HIST_BUCKETS = HIST_PER_DOUBLING * 27 + 1  # up to ~37 hours; longer lands in the last
# Prometheus "le" bounds that fall exactly on histogram bucket edges: 1 ms * 4^k.
PROM_EDGES = tuple(range(0, HIST_BUCKETS, 2 * HIST_PER_DOUBLING))


class Row(NamedTuple):
    """What the index remembers of one job file: small, immutable, no record."""

    ident: int  # file identity (see dashboard.listing); 0 for completed files
    job: str  # allow-list name, interned
    method: str  # interned
    created: float  # epoch seconds; 0.0 when unknown
    finished: float  # last attempt's end, epoch seconds; 0.0 when none
    duration: float  # last attempt's duration in seconds; -1.0 when none
    priority: int
    outcomes: str  # one code per attempt, interned
    text: str  # lower-case search text: params and error, capped
    # Job.waiting_until(now) as it was when the file was read, epoch seconds;
    # 0.0 when the job was due then. A time stays right until it passes (the
    # record is not changed without a new file), so the job is "scheduled"
    # while it lies ahead and ready after.
    waiting: float = 0.0
    source: str = ""  # the id this job was resubmitted from; "" for most jobs

    @property
    def readable(self) -> bool:
        return bool(self.job)

    def waits(self, now: float) -> bool:
        """Still waiting at now (not due yet): see ``waiting``."""
        return self.waiting > now

    @property
    def when(self) -> float:
        """When the job finished, or was created if no attempt ever ended."""
        return self.finished or self.created


def bucket_of(seconds: float) -> int:
    if seconds < HIST_BASE:
        return 0
    index = 1 + int(math.log(seconds / HIST_BASE, HIST_RATIO))
    return min(index, HIST_BUCKETS - 1)


def bucket_upper(index: int) -> float:
    # Powers of two are exact here, so the Prometheus edges print as 0.004, 1.024...
    return float(HIST_BASE * 2.0 ** (index / HIST_PER_DOUBLING))


def bucket_value(index: int) -> float:
    """A representative duration for a bucket: its geometric middle."""
    if index == 0:
        return HIST_BASE / 2
    return float(HIST_BASE * HIST_RATIO ** (index - 0.5))


class Histogram:
    """Log-bucketed durations of one job name."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * HIST_BUCKETS
        self.count = 0
        self.total = 0.0

    def add(self, seconds: float, sign: int) -> None:
        self.counts[bucket_of(seconds)] += sign
        self.count += sign
        self.total += sign * seconds

    def quantile(self, q: float) -> float | None:
        if self.count <= 0:
            return None
        target = max(1.0, q * self.count)
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= target:
                return bucket_value(index)
        return bucket_value(HIST_BUCKETS - 1)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound seconds, count at or below) at the Prometheus edges."""
        out = []
        running = 0
        edges = set(PROM_EDGES)
        for index, n in enumerate(self.counts):
            running += n
            if index in edges:
                out.append((bucket_upper(index), running))
        return out


@dataclass
class NameStats:
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class Bucket(NamedTuple):
    start: float  # epoch seconds
    completed: int
    failed: int


class NameSummary(NamedTuple):
    name: str
    completed: int
    failed: int
    cancelled: int
    success_rate: float | None
    p50: float | None
    p95: float | None
    mean: float | None


class Aggregates:
    """Incremental figures over the rows currently in the index."""

    def __init__(self, minute_window: float = 3 * 3600, hour_window: float = 49 * 3600) -> None:
        self.minute_window = minute_window
        self.hour_window = hour_window
        self.minutes: dict[int, list[int]] = {}
        self.hours: dict[int, list[int]] = {}
        self.names: dict[str, NameStats] = {}
        self.durations: dict[str, Histogram] = {}
        self.attempts: dict[str, int] = dict.fromkeys(OUTCOME_CODES, 0)
        self.horizon = 0.0  # rows finishing before this are not bucketed

    def add(self, status: Status, row: Row, sign: int, now: float) -> None:
        if not row.readable or status not in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
            return
        label = f"{row.job}.{row.method}"
        stats = self.names.get(label)
        if stats is None:
            stats = self.names[label] = NameStats()
        for code in row.outcomes:
            self.attempts[CODE_OUTCOMES[code]] += sign
        if status is Status.CANCELLED:
            stats.cancelled += sign
            return
        done = status is Status.COMPLETED
        if done:
            stats.completed += sign
            if row.duration >= 0:
                hist = self.durations.get(label)
                if hist is None:
                    hist = self.durations[label] = Histogram()
                hist.add(row.duration, sign)
        else:
            stats.failed += sign
        for table, width, window in (
            (self.minutes, 60, self.minute_window),
            (self.hours, 3600, self.hour_window),
        ):
            _bucket(table, width, window, row=row, done=done, sign=sign, now=now)

    def prune(self, now: float) -> None:
        for table, width, window in (
            (self.minutes, 60, self.minute_window),
            (self.hours, 3600, self.hour_window),
        ):
            oldest = int((now - window) // width)
            for key in [k for k in table if k < oldest]:
                del table[key]

    def series(self, width: int, count: int, now: float) -> list[Bucket]:
        """The last ``count`` buckets of ``width`` seconds, oldest first, gaps as zero."""
        table = self.minutes if width == 60 else self.hours
        last = int(now // width)
        out = []
        for key in range(last - count + 1, last + 1):
            cell = table.get(key, (0, 0))
            out.append(Bucket(float(key * width), cell[0], cell[1]))
        return out

    def per_name(self) -> list[NameSummary]:
        out = []
        for label in sorted(self.names):
            stats = self.names[label]
            if not (stats.completed or stats.failed or stats.cancelled):
                continue
            hist = self.durations.get(label)
            finished = stats.completed + stats.failed
            out.append(
                NameSummary(
                    name=label,
                    completed=stats.completed,
                    failed=stats.failed,
                    cancelled=stats.cancelled,
                    success_rate=stats.completed / finished if finished else None,
                    p50=hist.quantile(0.5) if hist else None,
                    p95=hist.quantile(0.95) if hist else None,
                    mean=hist.total / hist.count if hist and hist.count else None,
                )
            )
        return out


def _bucket(
    table: dict[int, list[int]],
    width: int,
    window: float,
    *,
    row: Row,
    done: bool,
    sign: int,
    now: float,
) -> None:
    when = row.when
    if when <= 0:
        return
    key = int(when // width)
    cell = table.get(key)
    if cell is None:
        # Rows older than the window are never bucketed, so their removal
        # finds no cell and must not create one either.
        if sign < 0 or when < now - window:
            return
        cell = table[key] = [0, 0]
    cell[0 if done else 1] += sign
    if cell[0] <= 0 and cell[1] <= 0:
        del table[key]


def success_rate(buckets: Iterable[Bucket]) -> float | None:
    done = failed = 0
    for bucket in buckets:
        done += bucket.completed
        failed += bucket.failed
    return done / (done + failed) if done + failed else None
