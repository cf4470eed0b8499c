"""How jobs, times and durations are shown: one place for the HTML and the API.

Owns formatting only (no I/O, no escaping: templates escape every value they
print, and JSON is JSON). Times are shown in UTC with an explicit zone;
durations and ages in human units. The JSON shapes built here are the API's
documented shapes (README.md), so a change here is an API change.

Params and results are shown as indented JSON, bounded by construction: the
renderer stops producing output once ``DISPLAY_CAP`` characters are written
(a long string is sliced before it is encoded), and containers deeper than
``MAX_SHOWN_DEPTH`` levels are shown as ``[...]`` or ``{...}``. So a page
costs work and memory in proportion to what it shows, whatever a job file
holds; the API has the whole value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobspool.model import Job, JobView, Progress
from jobspool.names import RunningName
from jobspool.states import Status

DISPLAY_CAP = 100_000  # characters of params/result shown on a page
MAX_SHOWN_DEPTH = 20  # nesting levels of params/result shown on a page
CUT_NOTE = "\n... (cut; the full value is in the API)"


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


@dataclass(frozen=True)
class RenderedJson:
    text: str
    cut: bool  # the cap was reached before the whole value was written
    nodes: int  # values visited: bounded by the cap, whatever the value's size


class _Budget:
    """Output pieces up to a number of characters; the piece that overflows is cut."""

    def __init__(self, cap: int) -> None:
        self.pieces: list[str] = []
        self.left = cap
        self.full = False

    def put(self, piece: str) -> None:
        if len(piece) > self.left:
            piece, self.full = piece[: self.left], True
        self.pieces.append(piece)
        self.left -= len(piece)


_encode_str = json.JSONEncoder(ensure_ascii=False).encode
_END = object()  # an exhausted container


def _scalar(value: Any, room: int) -> str:
    """One JSON scalar; a string is sliced to what can still be shown first."""
    if isinstance(value, str):
        return _encode_str(value[: max(room, 0)])
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return int.__repr__(value)
        except ValueError:  # too many digits to print in decimal
            return f'"<integer of {value.bit_length()} bits>"'
    if value is None or isinstance(value, bool | float):
        return json.dumps(value)
    return _encode_str(str(value)[: max(room, 0)])


class _Frame:
    """An open container: its items still to write, its depth, its closing bracket."""

    __slots__ = ("closer", "depth", "first", "items", "keyed")

    def __init__(self, items: Iterator[Any], depth: int, closer: str, keyed: bool) -> None:
        self.items, self.depth, self.closer, self.keyed = items, depth, closer, keyed
        self.first = True


def render_json(
    value: Any, cap: int = DISPLAY_CAP, max_depth: int = MAX_SHOWN_DEPTH
) -> RenderedJson:
    """``json.dumps(value, indent=2, ensure_ascii=False)``, up to ``cap`` characters.

    Iterative (no recursion limit) and lazy: it visits a value only when the
    text before it fits under the cap.
    """
    out = _Budget(cap)
    stack: list[_Frame] = []
    nodes = 0

    def open_value(item: Any, depth: int) -> None:
        nonlocal nodes
        nodes += 1
        keyed = isinstance(item, dict)
        if not (keyed or isinstance(item, list | tuple)):
            out.put(_scalar(item, out.left))
        elif not item:
            out.put("{}" if keyed else "[]")
        elif depth >= max_depth:
            out.put("{...}" if keyed else "[...]")
        else:
            out.put("{" if keyed else "[")
            items = iter(item.items()) if keyed else iter(item)
            stack.append(_Frame(items, depth + 1, "}" if keyed else "]", keyed))

    open_value(value, 0)
    while stack and not out.full:
        frame = stack[-1]
        item: Any = next(frame.items, _END)
        if item is _END:
            stack.pop()
            out.put("\n" + "  " * (frame.depth - 1) + frame.closer)
            continue
        out.put(("\n" if frame.first else ",\n") + "  " * frame.depth)
        frame.first = False
        if frame.keyed:
            key, item = item
            out.put(_scalar(str(key), out.left) + ": ")
        if not out.full:
            open_value(item, frame.depth)
    return RenderedJson("".join(out.pieces), out.full, nodes)


def pretty_json(value: Any) -> str:
    rendered = render_json(value)
    return rendered.text + CUT_NOTE if rendered.cut else rendered.text


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
