"""Live runners as the dashboard sees them: heartbeat age and running jobs.

Owns the heartbeat age shown to people. Heartbeat files are read through
``jobspool.heartbeats``, which validates them; a file that is not a valid
heartbeat is not shown as a runner and is logged once, when first seen so.
Like the runners themselves, the dashboard never
trusts another host's wall clock for liveness: the age is the time since the
dashboard last saw the heartbeat's ``beat`` counter change, on its own
monotonic clock. Only for a runner seen for the first time, when no change
has been observed yet, is the heartbeat's wall time used (never negative).

Invariant: ``stale`` is True when the age has reached the lease time, which
is when runners would start to recover that runner's jobs.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from jobspool import heartbeats
from jobspool.dashboard.present import iso
from jobspool.heartbeats import BeatJob, Heartbeat, Malformed
from jobspool.model import utcnow
from jobspool.spool import Spool

LOG = logging.getLogger("dashboard")


@dataclass(frozen=True)
class RunningJob:
    id: str
    name: str
    attempt: int | None
    pid: int | None
    started_at: str | None
    running_seconds: float | None


@dataclass(frozen=True)
class RunnerInfo:
    runner: str
    host: str
    pid: int | None
    started_at: str | None
    heartbeat_at: str | None
    heartbeat_age: float
    stale: bool
    jobs: list[RunningJob]

    def to_json(self) -> dict[str, Any]:
        return {
            "runner": self.runner,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "heartbeat_age_seconds": round(self.heartbeat_age, 3),
            "stale": self.stale,
            "jobs": [job.__dict__ for job in self.jobs],
        }


def _running(job: BeatJob) -> RunningJob:
    return RunningJob(
        id=job.id,
        name=job.name,
        attempt=job.attempt,
        pid=job.pid,
        started_at=iso(job.started_at),
        running_seconds=(utcnow() - job.started_at).total_seconds(),
    )


class RunnerWatch:
    def __init__(self, spool: Spool, lease_seconds: float) -> None:
        self.spool = spool
        self.lease_seconds = lease_seconds
        self._seen: dict[str, tuple[object, float]] = {}  # runner -> (signature, since)
        self._reported: set[str] = set()  # malformed files already logged
        self._lock = threading.Lock()

    def _age(self, runner: str, beat: Heartbeat, now: float) -> float:
        signature = beat.signature
        with self._lock:
            seen = self._seen.get(runner)
            if seen is not None and seen[0] == signature:
                return now - seen[1]
            initial = 0.0
            if seen is None:
                initial = max(0.0, (utcnow() - beat.wall).total_seconds())
            # Backdated, so an unchanged heartbeat keeps ageing from its first sight.
            self._seen[runner] = (signature, now - initial)
            return initial

    def _report(self, malformed: dict[str, Malformed]) -> None:
        with self._lock:
            new = sorted(set(malformed) - self._reported)
            self._reported = set(malformed)
        for runner in new:
            LOG.warning(
                "runners/%s%s is not a valid heartbeat: %s",
                runner,
                heartbeats.SUFFIX,
                malformed[runner].reason,
            )

    def snapshot(self) -> list[RunnerInfo]:
        now = time.monotonic()
        found = heartbeats.scan(self.spool)
        self._report(found.malformed)
        out = []
        for runner, beat in sorted(found.beats.items()):
            age = self._age(runner, beat, now)
            out.append(
                RunnerInfo(
                    runner=runner,
                    host=beat.host,
                    pid=beat.pid,
                    started_at=beat.started_at.isoformat(),
                    heartbeat_at=beat.wall.isoformat(),
                    heartbeat_age=age,
                    stale=age >= self.lease_seconds,
                    jobs=[_running(job) for job in beat.jobs],
                )
            )
        with self._lock:
            for gone in set(self._seen) - set(found.beats):
                del self._seen[gone]
        return out
