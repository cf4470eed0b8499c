"""Runs inside one attempt's process: import, bind, call, report.

The parent hands over a :class:`RunRequest` (already checked against the
allow-list). This module points the process's output at the job's log
(and sets its limits when the fork server could not, see ``limits``),
imports the allowed class, binds and validates the params, calls the method
and reports: from a fork server, as one line on the attempt's own report
pipe when it fits in one atomic write; otherwise (or when spawned) as a
small JSON file in tmp/. Either way the parent gets a whole report or none;
no report means the process died, and the parent records a crash with its
exit code or signal.

Invariants:

* every file an attempt writes in the spool is created exclusively, never
  through a link: the report file is made with ``O_CREAT | O_EXCL |
  O_NOFOLLOW`` under the unguessable name the runner chose; the job log is
  opened with ``O_NOFOLLOW | O_NONBLOCK`` and used only if it is a regular
  file with no other name (:func:`open_job_log`); anything else is refused
  and the attempt reports ``UnsafeJobLog`` without running the job;
* the report pipe is the attempt's own: the fork server relays what comes
  on it under the token it gave this attempt, so what a job writes there
  can only ever speak for itself.

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

# Environment marks that tie a process to the runner that started it and to
# its attempt (see provenance, which proves a process is ours by them).
RUNNER_MARK = "JOBSPOOL_RUNNER_PID"
ATTEMPT_MARK = "JOBSPOOL_ATTEMPT"

# Wire format of a request: version, then the fields in this order.
_WIRE_VERSION = 3
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
    "limits",
    "pool",
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
    limits: dict[str, float] | None  # see config.Limits; applied by jobspool.limits
    # Set for a pooled attempt (isolation: pool): its worker's recycling
    # rule and its output cap, (max attempts per worker, max resident bytes
    # after an attempt, output bytes or 0).
    pool: tuple[int, int, int] | None

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
        limits: dict[str, float] | None = None,
        pool: tuple[int, int, int] | None = None,
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
        self.limits = limits
        self.pool = pool

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
    try:
        import traceback  # only a failing attempt pays for it

        trace: str | None = "".join(traceback.format_exception(exc))[-50_000:]
    except Exception:  # a job at a limit (no file left to open, no memory)
        trace = None
    return {"type": type(exc).__qualname__, "message": str(exc)[:10_000], "traceback": trace}


def _type_names(exc: BaseException) -> list[str]:
    names = []
    for klass in type(exc).__mro__:
        if klass is object:
            break
        names += [klass.__qualname__, f"{klass.__module__}.{klass.__qualname__}"]
    return names


# errno values (the errno module is not loaded in the fork server): Linux's
# numbers; elsewhere these labels are simply not given.
_EAGAIN, _EMFILE = 11, 24


def amount(value: float) -> str:
    """A limit as people write it: 5, 1048576, 2.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _limit_hit(exc: BaseException, limits: dict[str, float]) -> str | None:
    """Which limit an uncaught exception shows the job ran into, if any."""
    if isinstance(exc, MemoryError) and "memory_mb" in limits:
        return f"memory limit of {amount(limits['memory_mb'])} MB reached"
    if isinstance(exc, OSError) and exc.errno == _EMFILE and "open_files" in limits:
        return f"open files limit of {amount(limits['open_files'])} reached"
    if isinstance(exc, OSError) and exc.errno == _EAGAIN and "processes" in limits:
        return f"process limit of {amount(limits['processes'])} reached"
    return None


def _failed(exc: BaseException, limits: dict[str, float] | None) -> dict[str, Any]:
    error, types = _error(exc), _type_names(exc)
    hit = _limit_hit(exc, limits) if limits else None
    if hit is not None:
        error |= {"type": "LimitExceeded", "message": f"{hit} ({type(exc).__name__}: {exc})"}
        types = ["LimitExceeded", *types]
    return {"outcome": outcomes.FAILED, "error": error, "error_types": types}


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


def execute(req: RunRequest, raised: list[BaseException] | None = None) -> dict[str, Any]:
    """Run the job; return the report (never raises for job errors).

    With ``raised``, what the job raised is also put there (eager mode gives
    it back to its caller)."""
    previous = context.current_job()
    try:
        report = _execute(req, raised)
        if context.progress_written():
            report["progress"] = True
        return report
    finally:
        context.set_current(previous)  # eager mode runs in the caller's process


def _execute(req: RunRequest, raised: list[BaseException] | None) -> dict[str, Any]:
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
        _keep(raised, exc)
        return {"outcome": outcomes.REJECTED, "error": _error(exc) | {"traceback": None}}
    except Exception as exc:  # the job's module failed to import or construct
        _keep(raised, exc)
        return _failed(exc, req.limits)
    try:
        value = method(*args, **kwargs)
    except Retry as exc:
        _keep(raised, exc)
        return {"outcome": outcomes.RETRY, "delay": exc.delay, "error": _error(exc)}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are job failures too
        _keep(raised, exc)
        return _failed(exc, req.limits)
    result, warning = _jsonable(value)
    return {"outcome": outcomes.SUCCEEDED, "result": result, "warning": warning}


def _keep(raised: list[BaseException] | None, exc: BaseException) -> None:
    if raised is not None:
        raised.append(exc)


_CREATE_REPORT = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def write_report(path: str, report: dict[str, Any]) -> None:
    """Create the report file; never through a link, never over another file.

    The runner reads it only after the process has exited, so no sync is
    needed; a process killed mid-write leaves bad JSON, read as a crash."""
    data = dumps(report, default=repr).encode()
    fd = os.open(path, _CREATE_REPORT, 0o600)
    try:
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


_OPEN_LOG = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_APPEND
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _is_regular(mode: int) -> bool:
    return mode & 0o170000 == 0o100000  # stat.S_ISREG, without importing stat


class UnsafeJobLog(OSError):
    """The job log's name holds something the attempt must not write to."""


def _log_name(path: str) -> str:
    """The log's name as people know it (logs/jobs/<id>.log), not the full path."""
    head, name = os.path.split(path)
    return "/".join((os.path.basename(os.path.dirname(head)), os.path.basename(head), name))


def open_job_log(path: str) -> int:
    """Open the job's log for appending: a regular file with one name, or refuse.

    No link is followed, no FIFO waited on; a file with a second name (a
    hard link planted to some other file) is not written either.
    """
    try:
        fd = os.open(path, _OPEN_LOG, 0o644)
    except OSError as exc:
        raise UnsafeJobLog(
            exc.errno, f"{_log_name(path)} cannot be opened safely: {exc.strerror}"
        ) from None
    try:
        st = os.fstat(fd)
        if not _is_regular(st.st_mode):
            raise UnsafeJobLog(f"{_log_name(path)} is not a regular file")
        if st.st_nlink != 1:
            raise UnsafeJobLog(f"{_log_name(path)} has {st.st_nlink} names (a hard link)")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def attach_log(path: str) -> str | None:
    """Point stdout and stderr at the job's log; the reason if it was refused."""
    try:
        fd = open_job_log(path)
    except OSError as exc:
        return str(exc) if isinstance(exc, UnsafeJobLog) else f"{_log_name(path)}: {exc}"
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return None


def refused(kind: str, message: str) -> dict[str, Any]:
    """The report of an attempt that did not run its job, and why."""
    error = {"type": kind, "message": message, "traceback": None}
    return {"outcome": outcomes.FAILED, "error": error, "error_types": [kind]}


# The C-level signal module, loaded anyway (the public one brings enum).
_signal: Any = __import__("_signal")


def prepare(req: RunRequest, own_limits: bool) -> dict[str, Any] | None:
    """Ready this process for the job: its marks, its log and, when no one
    else set them (see jobspool.limits), its limits. Returns the report of
    why the job cannot run, or None."""
    mark_attempt(req.token)
    refusal = attach_log(req.log_path)
    if refusal is not None:
        return refused("UnsafeJobLog", refusal)
    if not req.limits:
        return None
    if "output_bytes" in req.limits and hasattr(_signal, "SIGXFSZ"):
        # The interpreter ignores SIGXFSZ (a write past the limit would only
        # fail): the attempt dies of it instead, so the cause is on record.
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
    if own_limits and os.name == "posix":  # rlimits: POSIX only
        from jobspool import limits

        try:
            limits.apply(0, req.limits, req.log_path)
        except limits.LimitsNotApplied as exc:
            return refused("LimitsNotApplied", str(exc))
    return None


# What fits in one pipe write that the kernel keeps whole (POSIX PIPE_BUF is
# at least 512; Linux and macOS give 4096 or more).
PIPE_ATOMIC = min(getattr(select, "PIPE_BUF", 512), 4096)


def send_report(fd: int, token: str, report: dict[str, Any]) -> bool:
    """Send a small report as one line on the attempt's report pipe; False if too big.

    One write of at most PIPE_BUF bytes arrives whole, so the fork server
    reads the line in one piece and relays it under this attempt's token
    (the token and pid in the line are not believed). The runner then
    learns the outcome as soon as the job returns, before the process has
    even exited.
    """
    line = dumps({"report": token, "pid": os.getpid(), **report}, default=repr).encode()
    if len(line) + 1 > PIPE_ATOMIC:
        return False
    return os.write(fd, line + b"\n") == len(line) + 1


def mark_attempt(token: str) -> None:
    """What the job starts carries its attempt's token: a process that leaves
    the attempt's session can still be told apart as this attempt's."""
    os.environ[ATTEMPT_MARK] = token


def run(
    req: RunRequest, report_fd: int | None = None, not_run: dict[str, Any] | None = None
) -> int:
    """Run the job (unless ``not_run`` already says why it cannot) and report."""
    report = not_run or execute(req)
    if report.get("warning"):
        print(f"jobspool: warning: {report['warning']}", file=sys.stderr)
    # The log is complete before anyone hears of the outcome.
    sys.stdout.flush()
    sys.stderr.flush()
    sent = False
    if report_fd is not None:
        try:
            sent = send_report(report_fd, req.token, report)
        except OSError:  # the channel is closed or broken: use the file
            sent = False
    if not sent:
        write_report(req.report_path, report)
    return EXIT_OK if report["outcome"] == outcomes.SUCCEEDED else EXIT_FAILED


class Rehearsal:
    """A job that does nothing: the fork server runs it before it forks."""

    def run(self) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of spawned attempts: ``python -m jobspool.child`` with the
    request on stdin (never in a file someone else could swap)."""
    del argv  # the request comes on stdin only
    try:
        req = RunRequest.from_wire(sys.stdin.buffer.read())
    except (OSError, ValueError) as exc:
        print(f"jobspool child: bad request: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    return run(req, not_run=prepare(req, own_limits=True))


if __name__ == "__main__":
    sys.exit(main())
