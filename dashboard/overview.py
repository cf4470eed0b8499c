"""The overview's figures, gathered once for the page, the API and /metrics.

Owns what "the state of the queue" means: counts per status (directory
listings), completed/failed per minute over the last hour and per hour over
the last day, success rates, duration percentiles per job name (from the
index's incremental statistics), pending jobs split into ready (due now)
and scheduled (not due yet: delayed, or waiting for a retry; see
``Job.waiting_until``), the oldest ready pending job (a scheduled one is not
late work, so a healthy queue with retries waiting does not look stuck), live runners and
the number of quarantined files. Gathering opens no job file.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from jobspool.dashboard import retention
from jobspool.dashboard.index import IndexState
from jobspool.dashboard.retention import RetentionInfo
from jobspool.dashboard.runners import RunnerInfo
from jobspool.dashboard.state import Dashboard
from jobspool.dashboard.stats import Bucket, NameSummary, success_rate
from jobspool.spool import Spool

REASON_SUFFIX = ".reason.txt"


class CorruptCounter:
    """Files in corrupt/ (not counting their reason notes), cached by directory mtime."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._stamp: int | None = None
        self._count = 0
        self._lock = threading.Lock()

    def count(self) -> int:
        path = self.spool.dir("corrupt")
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            return 0
        with self._lock:
            # Within two seconds of a change the mtime may hide a second change.
            if stamp != self._stamp or time.time() - stamp / 1e9 < 2.0:
                names = self.spool.ops.scandir_names(path)
                self._count = sum(1 for n in names if not n.endswith(REASON_SUFFIX))
                self._stamp = stamp
            return self._count


@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]
    ready: int  # pending jobs due now
    scheduled: int  # pending jobs not due yet
    corrupt: int
    minutes: list[Bucket]
    hours: list[Bucket]
    success_last_hour: float | None
    success_last_day: float | None
    success_all: float | None
    per_name: list[NameSummary]
    oldest_pending_id: str | None
    oldest_pending_age: float | None
    runners: list[RunnerInfo]
    attempts: dict[str, int]
    index: IndexState
    now: float
    retention: RetentionInfo | None = None

    @property
    def running_attempts(self) -> int:
        return sum(len(r.jobs) for r in self.runners)

    def to_json(self) -> dict[str, Any]:
        def buckets(items: list[Bucket]) -> list[dict[str, Any]]:
            return [
                {"start": int(b.start), "completed": b.completed, "failed": b.failed} for b in items
            ]

        return {
            "counts": self.counts,
            # counts["pending"] is every pending file; these two split it.
            "ready": self.ready,
            "scheduled": self.scheduled,
            "corrupt": self.corrupt,
            "per_minute": buckets(self.minutes),
            "per_hour": buckets(self.hours),
            "success_rate": {
                "last_hour": self.success_last_hour,
                "last_day": self.success_last_day,
                "all": self.success_all,
            },
            "jobs": [s._asdict() for s in self.per_name],
            "oldest_pending": (
                {"id": self.oldest_pending_id, "age_seconds": self.oldest_pending_age}
                if self.oldest_pending_id
                else None
            ),
            "runners": [r.to_json() for r in self.runners],
            "attempts": self.attempts,
            "index": {
                "ready": self.index.ready,
                "rows": self.index.rows,
                "to_read": self.index.to_read,
                "limit": self.index.limit,
            },
            "generated_at": self.now,
            "retention": self.retention.to_json() if self.retention is not None else None,
        }


def gather(dash: Dashboard, corrupt: CorruptCounter) -> Overview:
    index = dash.fresh()
    now = time.time()
    counts = index.counts()
    with index.lock:
        agg = index.aggregates
        minutes = agg.series(60, 60, now)
        hours = agg.series(3600, 24, now)
        per_name = agg.per_name()
        attempts = dict(agg.attempts)
    pending = index.pending(now)
    oldest = pending.oldest_ready
    finished = counts["completed"] + counts["failed"]
    return Overview(
        counts=counts,
        ready=max(0, counts["pending"] - pending.scheduled),
        scheduled=pending.scheduled,
        corrupt=corrupt.count(),
        minutes=minutes,
        hours=hours,
        success_last_hour=success_rate(minutes),
        success_last_day=success_rate(hours),
        success_all=counts["completed"] / finished if finished else None,
        per_name=per_name,
        oldest_pending_id=oldest[0] if oldest else None,
        oldest_pending_age=max(0.0, now - oldest[1]) if oldest else None,
        runners=dash.runners.snapshot(),
        attempts=attempts,
        index=index.state(),
        now=now,
        retention=retention.gather(dash.config, dash.spool),
    )
