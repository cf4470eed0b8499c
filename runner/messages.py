"""Everything that travels to the runner's loop, as typed values, and its decoders.

The loop's thread owns every decision; other threads (the watcher, the
publishers), the signal handler and other processes (the fork server and the
attempts it forks) only send it messages. This module owns what those
messages are: one frozen dataclass per kind, put in the loop's
:class:`~jobspool.mailbox.Mailbox` and dispatched with ``match``, and the
decoders of the two payloads that cross a process boundary towards the
runner: the fork server's status lines and the attempt's report.

The other cross-process payloads have one home each too: the request to the
fork server is ``child.RunRequest`` (the fork server cannot import this
module: every module it imports makes each fork slower), and the heartbeat
is ``heartbeats.Heartbeat``.

Invariants:

* a decoder returns a value of this module or raises :class:`BadMessage`,
  whatever the bytes (the fork server relays what job code wrote on its
  report channel, and a planted file can stand where a report is expected);
* a decoded report is bounded: strings, lists and numbers are capped, and an
  outcome an attempt cannot know about itself (``outcomes.REPORTABLE``) is
  refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from jobspool import codec, outcomes
from jobspool.errors import InvalidJobFile
from jobspool.model import ErrorInfo

T = TypeVar("T")

MAX_ERROR_TYPES = 200
MAX_TYPE_NAME = 300
MAX_MESSAGE = 10_000
MAX_TRACEBACK = 50_000
MAX_TOKEN = 400


class BadMessage(ValueError):
    """Bytes that are not the message they claim to be; the reason says why."""


class BadReport(BadMessage):
    """What the fork server relayed from one attempt's own channel is not a
    report. The attempt is known (the fork server named it), so the runner
    records this as that attempt's failure (:func:`unreadable_report`)."""

    def __init__(self, token: str, pid: int, reason: str) -> None:
        super().__init__(reason)
        self.token = token
        self.pid = pid


# ---------------------------------------------------------------- the loop's inbox


@dataclass(frozen=True, slots=True)
class FileChanged:
    """The watcher saw a file appear in a watched directory (the latency path)."""

    path: str


@dataclass(frozen=True, slots=True)
class RescanNeeded:
    """Events were lost (inotify overflow, a watch removed): rescan now."""


@dataclass(frozen=True, slots=True)
class StopRequested:
    """SIGTERM or SIGINT reached the runner (a second one: hand back at once)."""

    signum: int


@dataclass(frozen=True, slots=True)
class LauncherGone:
    """The fork server died; its attempts are lost with it."""


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    token: str
    pid: int


@dataclass(frozen=True, slots=True)
class ChildReport:
    """What an attempt's process says about itself (the report's schema)."""

    outcome: str
    error: ErrorInfo | None = None
    error_types: tuple[str, ...] = ()
    result: Any = None
    delay: float | None = None
    progress: bool = False


@dataclass(frozen=True, slots=True)
class AttemptReported:
    """An attempt's report arrived; its process may still be exiting."""

    token: str
    pid: int
    report: ChildReport


@dataclass(frozen=True, slots=True)
class AttemptExited:
    """An attempt's process was reaped, or (a pooled attempt) its pool
    worker finished it and was kept: either way the attempt is over.
    ``code`` < 0 is the signal number."""

    token: str
    code: int


@dataclass(frozen=True, slots=True)
class Published(Generic[T]):
    """A publisher thread finished ``item``: True, False (fenced), or the error."""

    item: T
    outcome: bool | Exception


@dataclass(frozen=True, slots=True)
class LauncherReady:
    """The fork server has imported the engine (never reaches the loop)."""

    pid: int
    subreaper: bool = False  # it adopts what attempts leave behind (see zygote)


Event = (
    FileChanged
    | RescanNeeded
    | StopRequested
    | LauncherGone
    | AttemptStarted
    | AttemptReported
    | AttemptExited
    | Published[Any]
)


# ---------------------------------------------------------------- decoders


def _int(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value < 1 << 31:
        raise BadMessage(f"{what} is not a process id or exit status")
    return value


def _text(value: object, what: str, cap: int) -> str:
    if not isinstance(value, str):
        raise BadMessage(f"{what} is not text")
    return value[:cap]


def _error(value: object) -> ErrorInfo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadMessage("error is not an object")
    trace = value.get("traceback")
    try:
        return ErrorInfo(
            type=_text(value.get("type"), "error type", MAX_TYPE_NAME),
            message=_text(value.get("message"), "error message", MAX_MESSAGE),
            traceback=None if trace is None else _text(trace, "traceback", MAX_TRACEBACK),
        )
    except ValidationError as exc:
        raise BadMessage(f"error: {exc.errors()[0]['msg']}") from None


def _error_types(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadMessage("error_types is not a list")
    return tuple(_text(v, "error type", MAX_TYPE_NAME) for v in value[:MAX_ERROR_TYPES])


def _delay(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadMessage("delay is not a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise BadMessage("delay is not a number of seconds")
    return float(value)


def decode_report(data: object) -> ChildReport:
    """The report an attempt sent, checked field by field."""
    if not isinstance(data, dict):
        raise BadMessage("report is not an object")
    outcome = data.get("outcome")
    if outcome not in outcomes.REPORTABLE:
        raise BadMessage(f"an attempt cannot report the outcome {str(outcome)[:40]!r}")
    return ChildReport(
        outcome=str(outcome),
        error=_error(data.get("error")),
        error_types=_error_types(data.get("error_types")),
        result=data.get("result"),
        delay=_delay(data.get("delay")),
        progress=data.get("progress") is True,
    )


def decode_report_bytes(raw: bytes) -> ChildReport:
    """A report from its file (strict JSON, as job files are read)."""
    try:
        return decode_report(codec.parse_json(raw))
    except InvalidJobFile as exc:
        raise BadMessage(str(exc)) from None


def unreadable_report(reason: str) -> ChildReport:
    """What an attempt that sent something other than a report amounts to."""
    message = f"the attempt sent something that is not a report: {reason}"[:MAX_MESSAGE]
    return ChildReport(
        outcome=outcomes.FAILED,
        error=ErrorInfo(type="BadReport", message=message),
        error_types=("BadReport",),
    )


FromLauncher = AttemptStarted | AttemptReported | AttemptExited | LauncherReady


def decode_launcher_line(line: bytes) -> FromLauncher:
    """One line from the fork server's pipe.

    Only the fork server writes there: its ``ready`` line (JSON), then
    tab-separated status lines: ``S token pid``, ``R token pid report`` (the
    report an attempt sent on its own channel, relayed under the token the
    fork server gave it), ``X token pid code``, and ``D token pid code``
    (a pool worker finished the attempt and was kept: the attempt ended as
    an exit with that code would, so it decodes as :class:`AttemptExited`).
    A relayed report that does not decode raises :class:`BadReport`,
    naming the attempt.
    """
    if line[:1] == b"{":
        try:
            msg = codec.parse_json(line)
        except InvalidJobFile as exc:
            raise BadMessage(str(exc)) from None
        if not isinstance(msg, dict) or msg.get("ready") is not True:
            raise BadMessage("a JSON line that is not the fork server's ready line")
        return LauncherReady(_int(msg.get("pid"), "pid"), msg.get("subreaper") is True)
    if line[:2] == b"R\t":
        return _relayed_report(line)
    try:
        fields = line.decode("utf-8").split("\t")
    except UnicodeDecodeError:
        raise BadMessage("status line is not UTF-8") from None
    if fields[0] == "S" and len(fields) == 3 and fields[2].isdigit() and len(fields[2]) <= 10:
        return AttemptStarted(fields[1][:MAX_TOKEN], _int(int(fields[2]), "pid"))
    if fields[0] in ("X", "D") and len(fields) == 4:
        try:
            code = int(fields[3])
        except ValueError:
            raise BadMessage("exit status is not a number") from None
        return AttemptExited(fields[1][:MAX_TOKEN], code)
    raise BadMessage(f"unknown status line {line[:40]!r}")


def _relayed_report(line: bytes) -> AttemptReported:
    fields = line.split(b"\t", 3)
    if len(fields) != 4 or not fields[2].isdigit() or len(fields[2]) > 10:
        raise BadMessage(f"malformed report line {line[:40]!r}")
    try:
        token = fields[1].decode("utf-8")[:MAX_TOKEN]
    except UnicodeDecodeError:
        raise BadMessage("report token is not UTF-8") from None
    pid = _int(int(fields[2]), "pid")
    try:
        data = codec.parse_json(fields[3])
        if isinstance(data, dict):
            # The attempt's own idea of its token and pid is not believed.
            data = {k: v for k, v in data.items() if k not in ("report", "pid")}
        return AttemptReported(token, pid, decode_report(data))
    except InvalidJobFile as exc:
        raise BadReport(token, pid, str(exc)) from None
    except BadMessage as exc:
        raise BadReport(token, pid, str(exc)) from None
