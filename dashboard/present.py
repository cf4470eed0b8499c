"""How jobs, times and durations are shown: one place for the HTML and the API.

Owns formatting only (no I/O, no escaping: templates escape every value they
print, and JSON is JSON). Times are shown in UTC with an explicit zone;
durations and ages in human units. The JSON shapes built here are the API's
documented shapes (docs/DASHBOARD.md), so a change here is an API change.

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

from jobspool.actions import RESUBMITTABLE, resubmitted_from
from jobspool.model import Job, JobView, Outcome, Progress, utcnow
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


def fmt_iso(text: str | None) -> str:
    """An ISO time string (as heartbeats carry) shown like fmt_time."""
    if not text:
        return "-"
    try:
        return fmt_time(datetime.fromisoformat(text))
    except ValueError:
        return "-"


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


def fmt_in(seconds: float) -> str:
    """How long until a time ahead: "in 40 s", "in 5 min", "in 2 h 5 min"."""
    if seconds < 1:
        return "any moment"
    if seconds < 60:
        return f"in {int(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"in {minutes} min"
    return f"in {fmt_duration(minutes * 60)}"


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


def params_text(params: Any) -> str:
    """Params as the resubmit form's editable JSON (the whole value, indented)."""
    return json.dumps(params, indent=2, ensure_ascii=False)


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


@dataclass(frozen=True)
class Waiting:
    """A pending job that is not due yet (``Job.waiting_until``), as shown.

    ``kind`` is "retrying" when it waits for its next attempt
    (``next_attempt_at``), else "scheduled" (its producer delayed it with
    ``not_before``)."""

    kind: str
    until: datetime
    seconds: float  # from now until then

    @property
    def text(self) -> str:
        """The job page's form: "retrying at 12:05:00 UTC (in 5 min)"."""
        when = fmt_time(self.until)
        prefix = "retrying at" if self.kind == "retrying" else "scheduled for"
        return f"{prefix} {when} ({fmt_in(self.seconds)})"

    @property
    def short(self) -> str:
        """The list's form: "retrying in 5 min", "scheduled in 2 h 0 min"."""
        return f"{self.kind} {fmt_in(self.seconds)}"


def waiting_of(view: JobView, now: datetime | None = None) -> Waiting | None:
    """Whether a pending job waits (scheduled or retrying), and until when."""
    if view.status != Status.PENDING.value:
        return None
    moment = now or utcnow()
    rec = view.record
    until, kind = rec.waiting_until(moment), rec.waiting_kind(moment)
    if until is None or kind is None:
        return None
    return Waiting(kind, until, (until - moment).total_seconds())


def shown_status(view: JobView, waiting: Waiting | None) -> str:
    """The status as a badge shows it: "scheduled" and "retrying" apart from pending."""
    return waiting.kind if waiting is not None else view.status


def error_line(job: Job, limit: int = 160) -> str:
    if job.error is not None:
        return f"{job.error.type}: {job.error.message}"[:limit]
    return (job.reason or "")[:limit]


def running_attempt(view: JobView) -> int | None:
    """The attempt number a running job's claim carries in its file name."""
    claim = running_claim(view)
    return claim.attempt if claim else None


def running_claim(view: JobView) -> RunningName | None:
    """A running job's claim (runner and attempt), from its file name."""
    if view.status != Status.RUNNING.value:
        return None
    return RunningName.parse(Path(view.path).name)


@dataclass(frozen=True)
class AttemptCounts:
    """How many attempts a job has used, as its page says it.

    Attempts are counted at claim, so a running job's current attempt counts
    as used (and in progress) before its record lists it."""

    used: int
    recorded: int
    in_progress: int | None  # the running attempt's number

    def text(self, job: Job) -> str:
        limit = f" of {job.max_attempts}" if job.max_attempts else ""
        if job.attempt_base:
            line = f"{self.recorded} recorded; {self.used}{limit} counted since the last retry"
        else:
            line = f"{self.used}{limit} used"
        if self.in_progress is not None:
            line += f" (attempt {self.in_progress} in progress)"
        return line


def attempt_counts(view: JobView) -> AttemptCounts:
    rec = view.record
    current = running_attempt(view)
    extra = 1 if current is not None else 0
    return AttemptCounts(rec.attempts_used + extra, len(rec.attempts) + extra, current)


def is_active(status: str) -> bool:
    return status in (Status.PENDING.value, Status.RUNNING.value)


def rejected_for_params(job: Job) -> bool:
    """The job was rejected because its params do not fit the method: a plain
    retry is rejected again; only resubmitting with other params can help."""
    last = job.attempts[-1] if job.attempts else None
    rejected = (last is not None and last.outcome is Outcome.REJECTED) or (
        job.reason or ""
    ).startswith("rejected")
    return rejected and job.error is not None and job.error.type == "InvalidParams"


def can_resubmit(view: JobView) -> bool:
    return view.status in {s.value for s in RESUBMITTABLE}


def summary(view: JobView, now: datetime | None = None) -> dict[str, Any]:
    """A job as one list row: the API shape of GET /api/jobs items."""
    rec = view.record
    done = finished_at(rec)
    err = rec.error.model_dump(mode="json", exclude={"traceback"}) if rec.error else None
    waiting = waiting_of(view, now)
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
        # Pending jobs not due yet: "scheduled" or "retrying"; else the status.
        "state": shown_status(view, waiting),
        "due_at": iso(rec.due_at()) if view.status == Status.PENDING.value else None,
        "waiting_until": iso(waiting.until) if waiting else None,
        "resubmitted_from": resubmitted_from(rec),
    }


def list_row(view: JobView, now: datetime | None = None) -> dict[str, str]:
    """A job as one row of the HTML list, every value already formatted.

    Only a finished job shows when it finished and its error as such; a
    pending job waiting for its next attempt says so, and shows the last
    attempt's error as what happened before, not as its outcome."""
    rec = view.record
    waiting = waiting_of(view, now)
    finished = Status(view.status).terminal
    error = error_line(rec, 120)
    return {
        "id": view.id,
        "status": view.status,
        "shown": shown_status(view, waiting),
        "due": waiting.short if waiting else "",
        "due_title": waiting.text if waiting else "",
        "name": f"{rec.job}.{rec.method}",
        # A running job's current attempt counts, as on its page.
        "attempts": str(attempt_counts(view).recorded),
        "created": fmt_time(rec.created_at, zone=False),
        "finished": fmt_time(finished_at(rec), zone=False) if finished else "-",
        "duration": fmt_duration(duration_of(rec)),
        "error": error if finished or not error else f"last attempt: {error}",
        "error_class": "err" if finished else "err earlier",
    }


def progress_of(view: JobView, live: Progress | None) -> Progress | None:
    """Live progress while the job runs, else what its record kept."""
    if view.status == Status.RUNNING.value and live is not None:
        return live
    return view.record.progress


def detail(
    view: JobView,
    live: Progress | None,
    log_size: int | None,
    resubmissions: list[str] | None = None,
) -> dict[str, Any]:
    """A job with everything: the API shape of GET /api/jobs/<id>."""
    data = view.to_public()
    progress = progress_of(view, live)
    data["progress"] = progress.model_dump(mode="json") if progress else None
    data["live_progress"] = live.model_dump(mode="json") if live else None
    data["log"] = {"size": log_size, "url": f"/api/jobs/{view.id}/log"}
    data["actions"] = job_actions(view)
    waiting = waiting_of(view)
    data["state"] = shown_status(view, waiting)
    data["due_at"] = iso(view.record.due_at()) if view.status == Status.PENDING.value else None
    data["waiting_until"] = iso(waiting.until) if waiting else None
    counts = attempt_counts(view)
    data["current_attempt"] = counts.in_progress
    data["resubmitted_from"] = resubmitted_from(view.record)
    data["resubmissions"] = list(resubmissions or [])
    data["resubmit"] = f"/api/jobs/{view.id}/resubmit" if can_resubmit(view) else None
    return data


def actions_for(status: str) -> list[str]:
    if status in (Status.FAILED.value, Status.CANCELLED.value):
        return ["retry"]
    if status in (Status.PENDING.value, Status.RUNNING.value):
        return ["cancel"]
    return []


def job_actions(view: JobView) -> list[str]:
    """What the job's page offers besides resubmitting: no retry for a job
    rejected for its params (it would be rejected again)."""
    found = actions_for(view.status)
    if "retry" in found and rejected_for_params(view.record):
        found.remove("retry")
    return found
