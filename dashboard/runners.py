"""Live runners as the dashboard sees them: heartbeat age and running jobs.

Owns the heartbeat age shown to people. Heartbeat files are read through
``jobspool.leases.Liveness``. Like the runners themselves, the dashboard never
trusts another host's wall clock for liveness: the age is the time since the
dashboard last saw the heartbeat's ``beat`` counter change, on its own
monotonic clock. Only for a runner seen for the first time, when no change
has been observed yet, is the heartbeat's wall time used (never negative).

Invariant: ``stale`` is True when the age has reached the lease time, which
is when runners would start to recover that runner's jobs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobspool.dashboard.present import iso
from jobspool.leases import Liveness
from jobspool.model import utcnow
from jobspool.spool import Spool


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


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class RunnerWatch:
    def __init__(self, spool: Spool, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self._liveness = Liveness(spool, "", lease_seconds)
        self._seen: dict[str, tuple[object, float]] = {}  # runner -> (signature, since)
        self._lock = threading.Lock()

    def _age(self, runner: str, beat: dict[str, Any], now: float) -> float:
        signature = (beat.get("beat"), beat.get("pid"))
        with self._lock:
            seen = self._seen.get(runner)
            if seen is not None and seen[0] == signature:
                return now - seen[1]
            initial = 0.0
            if seen is None:
                wall = _parse_time(beat.get("wall"))
                if wall is not None:
                    initial = max(0.0, (utcnow() - wall).total_seconds())
            # Backdated, so an unchanged heartbeat keeps ageing from its first sight.
            self._seen[runner] = (signature, now - initial)
            return initial

    def snapshot(self) -> list[RunnerInfo]:
        now = time.monotonic()
        beats = self._liveness.runners()
        out = []
        for runner in sorted(beats):
            beat = beats[runner]
            age = self._age(runner, beat, now)
            jobs = []
            for job in beat.get("jobs") or []:
                if not isinstance(job, dict):
                    continue
                started = _parse_time(job.get("started_at"))
                jobs.append(
                    RunningJob(
                        id=str(job.get("id") or ""),
                        name=str(job.get("name") or ""),
                        attempt=_int_or_none(job.get("attempt")),
                        pid=_int_or_none(job.get("pid")),
                        started_at=iso(started),
                        running_seconds=(utcnow() - started).total_seconds() if started else None,
                    )
                )
            out.append(
                RunnerInfo(
                    runner=runner,
                    host=str(beat.get("host") or ""),
                    pid=_int_or_none(beat.get("pid")),
                    started_at=str(beat["started_at"]) if beat.get("started_at") else None,
                    heartbeat_at=str(beat["wall"]) if beat.get("wall") else None,
                    heartbeat_age=age,
                    stale=age >= self.lease_seconds,
                    jobs=jobs,
                )
            )
        with self._lock:
            for gone in set(self._seen) - set(beats):
                del self._seen[gone]
        return out
