"""How jobs, times and durations are shown: one place for the HTML and the API.

Owns formatting only (no I/O, no escaping: templates escape every value they
print, and JSON is JSON). Times are shown in UTC with an explicit zone;
durations and ages in human units. The JSON shapes built here are the API's
documented shapes (README.md), so a change here is an API change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobspool.model import Job, JobView, Progress
from jobspool.spool import RunningName
from jobspool.states import Status

DISPLAY_CAP = 100_000  # characters of params/result shown on a page


def fmt_time(value: datetime | float | None, *, zone: bool = True) -> str:
    if value is None or value == 0:
        return "-"
    when = datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else value
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" + (" UTC" if zone else ""))


def fmt_clock(epoch: float, *, hours_only: bool = False) -> str:
    when = datetime.fromtimestamp(epoch, UTC)
    return when.strftime("%H:00" if hours_only else "%H:%M")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return fmt_duration(max(0.0, seconds)) if seconds >= 1 else "just now"


def fmt_ago(seconds: float | None) -> str:
    text = fmt_age(seconds)
    return text if text in ("-", "just now") else f"{text} ago"


def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def pretty_json(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)
    if len(text) > DISPLAY_CAP:
        return text[:DISPLAY_CAP] + "\n... (cut; the full value is in the API)"
    return text


def iso(when: datetime | None) -> str | None:
    """The API's time format, the same as the job files': UTC with a Z."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def finished_at(job: Job) -> datetime | None:
    last = job.attempts[-1] if job.attempts else None
    return last.finished_at if last else None


def duration_of(job: Job) -> float | None:
    last = job.attempts[-1] if job.attempts else None
    return last.duration_seconds if last else None


def error_line(job: Job, limit: int = 160) -> str:
    if job.error is not None:
        return f"{job.error.type}: {job.error.message}"[:limit]
    return (job.reason or "")[:limit]


def running_attempt(view: JobView) -> int | None:
    """The attempt number a running job's claim carries in its file name."""
    if view.status != Status.RUNNING.value:
        return None
    claim = RunningName.parse(Path(view.path).name)
    return claim.attempt if claim else None


def is_active(status: str) -> bool:
    return status in (Status.PENDING.value, Status.RUNNING.value)


def summary(view: JobView) -> dict[str, Any]:
    """A job as one list row: the API shape of GET /api/jobs items."""
    rec = view.record
    done = finished_at(rec)
    err = rec.error.model_dump(mode="json", exclude={"traceback"}) if rec.error else None
    return {
        "id": view.id,
        "status": view.status,
        "job": rec.job,
        "method": rec.method,
        "priority": rec.priority,
        "created_at": iso(rec.created_at),
        "finished_at": iso(done),
        "duration_seconds": duration_of(rec),
        "attempts": len(rec.attempts),
        "attempts_used": rec.attempts_used,
        "max_attempts": rec.max_attempts,
        "next_attempt_at": iso(rec.next_attempt_at),
        "error": err,
        "reason": rec.reason,
    }


def list_row(view: JobView) -> dict[str, str]:
    """A job as one row of the HTML list, every value already formatted."""
    rec = view.record
    return {
        "id": view.id,
        "status": view.status,
        "name": f"{rec.job}.{rec.method}",
        "attempts": str(len(rec.attempts)),
        "created": fmt_time(rec.created_at, zone=False),
        "finished": fmt_time(finished_at(rec), zone=False),
        "duration": fmt_duration(duration_of(rec)),
        "error": error_line(rec, 120),
    }


def progress_of(view: JobView, live: Progress | None) -> Progress | None:
    """Live progress while the job runs, else what its record kept."""
    if view.status == Status.RUNNING.value and live is not None:
        return live
    return view.record.progress


def detail(view: JobView, live: Progress | None, log_size: int | None) -> dict[str, Any]:
    """A job with everything: the API shape of GET /api/jobs/<id>."""
    data = view.to_public()
    progress = progress_of(view, live)
    data["progress"] = progress.model_dump(mode="json") if progress else None
    data["live_progress"] = live.model_dump(mode="json") if live else None
    data["log"] = {"size": log_size, "url": f"/api/jobs/{view.id}/log"}
    data["actions"] = actions_for(view.status)
    return data


def actions_for(status: str) -> list[str]:
    if status in (Status.FAILED.value, Status.CANCELLED.value):
        return ["retry"]
    if status in (Status.PENDING.value, Status.RUNNING.value):
        return ["cancel"]
    return []
