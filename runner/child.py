"""Runs inside one attempt's process: import, bind, call, report.

The parent hands over a :class:`RunRequest` (already checked against the
allow-list). This module imports the allowed class, binds and validates the
params, calls the method and writes one small JSON report next to the claim
in tmp/, or, from a fork server, sends it as one line on the runner's pipe
when it fits in one atomic write. Either way the parent gets a whole
report or none; no report means the process died, and the parent records a
crash with its exit code or signal.

The fork server imports this module, and every attempt's process is a copy
of it: each module imported here makes every fork and every exit slower.
So it imports nothing beyond what the interpreter has loaded anyway: the
request travels as ``marshal`` data (runner and child are the same
interpreter), and reports are encoded by ``_json``, the C encoder behind
the json package, without the package (which would bring ``re`` and
``enum``).
"""

from __future__ import annotations

import marshal
import os
import select
import sys

from jobspool import binding, context, outcomes
from jobspool.errors import JobRejected, Retry

TYPE_CHECKING = False  # typing.TYPE_CHECKING would import typing: see above
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1  # the job did not succeed; its report says why
EXIT_INTERNAL = 70

# Wire format of a request: version, then the fields in this order.
_WIRE_VERSION = 1
_FIELDS = (
    "token",
    "job_id",
    "job",
    "method",
    "params",
    "class_path",
    "attempt",
    "max_attempts",
    "base_dir",
    "spool",
    "log_dir",
    "log_path",
    "report_path",
)


class RunRequest:
    """Everything one attempt needs; plain data so the child needs no pydantic."""

    __slots__ = _FIELDS
    token: str
    job_id: str
    job: str
    method: str
    params: list[Any] | dict[str, Any]
    class_path: str
    attempt: int
    max_attempts: int
    base_dir: str
    spool: str | None
    log_dir: str | None
    log_path: str
    report_path: str

    def __init__(
        self,
        *,
        token: str,
        job_id: str,
        job: str,
        method: str,
        params: list[Any] | dict[str, Any],
        class_path: str,
        attempt: int,
        max_attempts: int,
        base_dir: str,
        spool: str | None = None,
        log_dir: str | None = None,
        log_path: str = "",
        report_path: str = "",
    ) -> None:
        self.token = token
        self.job_id = job_id
        self.job = job
        self.method = method
        self.params = params
        self.class_path = class_path
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.base_dir = base_dir
        self.spool = spool
        self.log_dir = log_dir
        self.log_path = log_path
        self.report_path = report_path

    def to_wire(self) -> bytes:
        return marshal.dumps((_WIRE_VERSION, *(getattr(self, f) for f in _FIELDS)))

    @classmethod
    def from_wire(cls, data: bytes) -> RunRequest:
        """The request from to_wire; ValueError if data is not one."""
        try:
            # Only ever from the runner that started this process.
            version, *values = marshal.loads(data)  # noqa: S302
        except (EOFError, TypeError, ValueError) as exc:
            raise ValueError(f"not a run request: {exc}") from None
        if version != _WIRE_VERSION or len(values) != len(_FIELDS):
            raise ValueError("not a run request of this version")
        return cls(**dict(zip(_FIELDS, values, strict=True)))


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


try:
    from _json import encode_basestring_ascii as _ascii
    from _json import make_encoder as _make_encoder

    _C_ENCODER = True
except ImportError:  # pragma: no cover - an interpreter without the C accelerator
    _C_ENCODER = False


def dumps(
    value: Any, default: Callable[[Any], object] = _not_json, *, allow_nan: bool = True
) -> str:
    """Compact JSON text of value, as json.dumps makes it (ASCII only)."""
    if not _C_ENCODER:  # pragma: no cover - see the import above
        import json

        return json.dumps(value, default=default, allow_nan=allow_nan, separators=(",", ":"))
    encode = _make_encoder({}, default, _ascii, None, ":", ",", False, False, allow_nan)
    return "".join(encode(value, 0))


def _error(exc: BaseException) -> dict[str, Any]:
    import traceback  # only a failing attempt pays for it

    return {
        "type": type(exc).__qualname__,
        "message": str(exc)[:10_000],
        "traceback": "".join(traceback.format_exception(exc))[-50_000:],
    }


def _type_names(exc: BaseException) -> list[str]:
    names = []
    for klass in type(exc).__mro__:
        if klass is object:
            break
        names += [klass.__qualname__, f"{klass.__module__}.{klass.__qualname__}"]
    return names


def _jsonable(value: Any) -> tuple[Any, str | None]:
    if value is None or type(value) in (str, int, bool):
        return value, None
    try:
        dumps(value, allow_nan=False)
        return value, None
    except (TypeError, ValueError, RecursionError):
        return repr(value)[
            :100_000
        ], f"result of type {type(value).__name__} is not JSON; stored as repr"


def execute(req: RunRequest) -> dict[str, Any]:
    """Run the job; return the report (never raises for job errors)."""
    previous = context.current_job()
    try:
        report = _execute(req)
        if context.progress_written():
            report["progress"] = True
        return report
    finally:
        context.set_current(previous)  # eager mode runs in the caller's process


def _execute(req: RunRequest) -> dict[str, Any]:
    if req.base_dir not in sys.path:
        sys.path.insert(0, req.base_dir)
    context.set_current(
        context.JobContext(
            id=req.job_id,
            job=req.job,
            method=req.method,
            attempt=req.attempt,
            max_attempts=req.max_attempts,
            spool=req.spool,
            log_dir=req.log_dir,
        )
    )
    try:
        cls = binding.load_class(req.class_path)
        args, kwargs = binding.bind(cls, req.method, req.params)
        method = getattr(cls(), req.method)
    except JobRejected as exc:
        return {"outcome": outcomes.REJECTED, "error": _error(exc) | {"traceback": None}}
    except Exception as exc:  # the job's module failed to import or construct
        return {"outcome": outcomes.FAILED, "error": _error(exc), "error_types": _type_names(exc)}
    try:
        value = method(*args, **kwargs)
    except Retry as exc:
        return {"outcome": outcomes.RETRY, "delay": exc.delay, "error": _error(exc)}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are job failures too
        return {"outcome": outcomes.FAILED, "error": _error(exc), "error_types": _type_names(exc)}
    result, warning = _jsonable(value)
    return {"outcome": outcomes.SUCCEEDED, "result": result, "warning": warning}


def write_report(path: str, report: dict[str, Any]) -> None:
    """The runner reads this only after the process has exited, so a plain
    write is enough; a process killed mid-write leaves bad JSON = a crash."""
    data = dumps(report, default=repr).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


# What fits in one pipe write that the kernel keeps whole (POSIX PIPE_BUF is
# at least 512; Linux and macOS give 4096 or more).
PIPE_ATOMIC = min(getattr(select, "PIPE_BUF", 512), 4096)


def send_report(fd: int, token: str, report: dict[str, Any]) -> bool:
    """Send a small report as one line on the runner's pipe; False if too big.

    One write of at most PIPE_BUF bytes is atomic, so lines from many
    attempts (and the fork server's own) never interleave. The runner then
    learns the outcome as soon as the job returns, before the process has
    even exited.
    """
    line = dumps({"report": token, "pid": os.getpid(), **report}, default=repr).encode()
    if len(line) + 1 > PIPE_ATOMIC:
        return False
    return os.write(fd, line + b"\n") == len(line) + 1


def run(req: RunRequest, report_fd: int | None = None) -> int:
    report = execute(req)
    if report.get("warning"):
        print(f"jobspool: warning: {report['warning']}", file=sys.stderr)
    # The log is complete before anyone hears of the outcome.
    sys.stdout.flush()
    sys.stderr.flush()
    sent = False
    if report_fd is not None:
        try:
            sent = send_report(report_fd, req.token, report)
        except OSError:  # the runner is gone, or the pipe is broken: use the file
            sent = False
    if not sent:
        write_report(req.report_path, report)
    return EXIT_OK if report["outcome"] == outcomes.SUCCEEDED else EXIT_FAILED


class Rehearsal:
    """A job that does nothing: the fork server runs it before it forks."""

    def run(self) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of spawned attempts: ``python -m jobspool.child REQUEST``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        with open(args[0], "rb") as request:
            req = RunRequest.from_wire(request.read())
    except (IndexError, OSError, ValueError) as exc:
        print(f"jobspool child: bad request: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    return run(req)


if __name__ == "__main__":
    sys.exit(main())
