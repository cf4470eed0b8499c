"""One attempt, from what its process left behind to the job's next record.

The runner's loop owns *when* things happen; this module owns *what* an
attempt amounts to: reading the child's report (or, without one, reading the
exit status as a crash, a kill we ordered, a timeout, a limit the kernel
enforced: ``LimitExceeded``), turning it into an
:class:`~runner.model.Attempt`, and building the record that the retry
decision sends on. Apart from reading and removing the report file, nothing
here does I/O.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobspool import logs
from jobspool.child import amount
from jobspool.fsops import FileOps, StrPath
from jobspool.messages import BadMessage, ChildReport, decode_report_bytes
from jobspool.model import Attempt, ErrorInfo, HistoryEntry, Job, Outcome, Progress, utcnow
from jobspool.names import RunningName
from jobspool.retry import Action, Decision
from jobspool.states import Status

# A report this large is not read (its result could not be stored anyway).
REPORT_MAX_BYTES = 16 << 20

DESTINATION = {
    Action.COMPLETE: Status.COMPLETED,
    Action.RETRY: Status.PENDING,
    Action.FAIL: Status.FAILED,
    Action.CANCEL: Status.CANCELLED,
    Action.HAND_BACK: Status.PENDING,
}

_LOG_NAMES = {
    Action.COMPLETE: "completed",
    Action.RETRY: "retry_scheduled",
    Action.FAIL: "failed",
    Action.CANCEL: "cancelled",
    Action.HAND_BACK: "handed_back",
}


@dataclass
class Active:
    """One attempt a runner owns."""

    token: str
    claim: RunningName
    path: StrPath
    job: Job
    pid: int | None
    started_at: datetime
    deadline: float
    pid_created: float | None = None
    host: str | None = None  # set when the attempt ran on another host
    stop: Outcome | None = None  # why the runner killed it, if it did
    stop_info: dict[str, Any] = field(default_factory=dict)
    exited_at: datetime | None = None  # when the runner learnt the process ended
    # The same two instants on the loop's monotonic clock (the one the
    # deadline is on), so a recorded duration is never below a timeout.
    begun: float | None = None
    ended: float | None = None
    # Where the attempt may leave a report too big for its pipe: a fresh,
    # unguessable name in tmp/ that the attempt creates exclusively.
    report_path: str | None = None
    limits: dict[str, float] = field(default_factory=dict)  # what it ran under (config.Limits)
    pooled: bool = False  # runs in a pool worker (isolation: pool), stopped through the launcher


@dataclass
class Report:
    """What one attempt produced, as the runner saw it."""

    outcome: Outcome
    exit_code: int | None = None
    signal: int | None = None
    error: ErrorInfo | None = None
    error_types: tuple[str, ...] = ()
    result: Any = None
    delay: float | None = None
    # Whether the attempt wrote live progress; None when it could not say.
    progress: bool | None = None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def from_child(child: ChildReport, code: int) -> Report:
    """The Report for what the attempt process said about itself."""
    return Report(
        outcome=Outcome(child.outcome),
        exit_code=code,
        error=child.error,
        error_types=child.error_types,
        result=child.result,
        delay=child.delay,
        progress=child.progress,
    )


def stop_error(act: Active, timeout: float) -> ErrorInfo | None:
    if act.stop is Outcome.TIMED_OUT:
        return ErrorInfo(
            type="Timeout", message=f"ran longer than {timeout:g}s; process tree killed"
        )
    if act.stop is Outcome.LOST:
        return ErrorInfo(type="RunnerLost", message="the runner lost its lease; attempt abandoned")
    return None


def limit_error(sig: int, limits: dict[str, float]) -> ErrorInfo | None:
    """The limit whose signal killed an attempt: the kernel sends SIGXCPU at
    the cpu time limit and SIGXFSZ to a write past the output limit."""
    if sig == getattr(signal, "SIGXCPU", None) and "cpu_seconds" in limits:
        message = f"cpu time limit of {amount(limits['cpu_seconds'])}s reached"
    elif sig == getattr(signal, "SIGXFSZ", None) and "output_bytes" in limits:
        message = f"output limit of {amount(limits['output_bytes'])} bytes reached"
    else:
        return None
    return ErrorInfo(type="LimitExceeded", message=f"{message}; attempt process killed")


def read_report(path: str | None, act: Active, code: int, timeout: float) -> Report:
    """The child's report if it left a whole one; else what the exit status says.

    A report wins over a kill we ordered: the job finished just before it.
    A limit's signal wins over a kill we ordered too: the kernel was first.
    An attempt a limit stopped is a failure of the job (``LimitExceeded``,
    which a retry policy may list as not retryable).
    """
    child = _read_child_report(path) if path is not None else None
    if child is not None:
        return from_child(child, code)
    limit = limit_error(-code, act.limits) if code < 0 else None
    if limit is not None:
        return Report(Outcome.FAILED, signal=-code, error=limit, error_types=("LimitExceeded",))
    if act.stop is not None:
        sig = -code if code < 0 else None
        return Report(act.stop, signal=sig, error=stop_error(act, timeout))
    if code < 0:
        message = f"attempt process killed by signal {_signal_name(-code)}"
        return Report(
            Outcome.CRASHED, signal=-code, error=ErrorInfo(type="Crashed", message=message)
        )
    message = f"attempt process exited with code {code} without a result"
    return Report(Outcome.CRASHED, exit_code=code, error=ErrorInfo(type="Crashed", message=message))


def _read_child_report(path: str) -> ChildReport | None:
    """The report file an attempt left, if it is a whole and valid one.

    Never follows a link or blocks on a FIFO planted under the report's name;
    what is found there is removed either way (it is ours, or a plant)."""
    try:
        raw, _st = FileOps().read_regular_stat(path, REPORT_MAX_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logs.event("bad_report", logs.WARNING, file=os.path.basename(path), error=exc)
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    try:
        if len(raw) > REPORT_MAX_BYTES:
            raise BadMessage(f"report larger than {REPORT_MAX_BYTES} bytes")
        return decode_report_bytes(raw)
    except BadMessage as exc:
        logs.event("bad_report", logs.WARNING, file=os.path.basename(path), error=exc)
        return None


def make_attempt(act: Active, report: Report, host: str) -> Attempt:
    finished = act.exited_at or utcnow()
    return Attempt(
        number=act.claim.attempt,
        runner=act.claim.runner,
        host=host,
        pid=act.pid,
        started_at=act.started_at,
        finished_at=finished,
        duration_seconds=round(_duration(act, finished), 6),
        outcome=report.outcome,
        exit_code=report.exit_code,
        signal=report.signal,
        error=report.error,
    )


def _duration(act: Active, finished: datetime) -> float:
    if act.begun is not None and act.ended is not None:
        return act.ended - act.begun
    return (finished - act.started_at).total_seconds()


def next_updates(
    job: Job,
    attempt: Attempt,
    decision: Decision,
    *,
    report: Report,
    act: Active,
    progress: Progress | None,
) -> dict[str, Any]:
    """What changes in the job's record after the decision: the attempt,
    result or error, reason, history (applied once, by Spool.seal)."""
    updates: dict[str, Any] = {
        "attempts": [*job.attempts, attempt],
        "progress": progress or job.progress,
        "next_attempt_at": decision.at,
    }
    if decision.action is Action.COMPLETE:
        updates |= {"result": report.result, "error": None, "reason": None}
    elif decision.action is Action.HAND_BACK:
        updates |= {"next_attempt_at": None}
    else:
        updates |= {"error": report.error or job.error, "reason": decision.reason}
    if decision.action is Action.CANCEL:
        info = act.stop_info
        entry = HistoryEntry(
            at=utcnow(), action="cancelled", by=info.get("by"), via=info.get("via")
        )
        updates["history"] = [*job.history, entry]
    return updates


def log_finish(record: Job, attempt: Attempt, decision: Decision) -> None:
    level = logs.ERROR if decision.action is Action.FAIL else logs.INFO
    err = attempt.error
    summary = f"{err.type}: {err.message}"[:300] if err else None
    logs.event(
        _LOG_NAMES[decision.action],
        level,
        exc_text=err.traceback if err and level == logs.ERROR else None,
        job=record.id,
        name=f"{record.job}.{record.method}",
        attempt=attempt.number,
        outcome=attempt.outcome.value,
        duration=f"{attempt.duration_seconds or 0:.3f}s",
        next_at=decision.at.isoformat() if decision.at else None,
        error=summary,
    )
    if attempt.outcome is Outcome.FAILED and decision.action is Action.RETRY and err:
        # Retried failures still belong in the errors log, with their traceback.
        logs.event(
            "attempt_error",
            logs.ERROR,
            exc_text=err.traceback,
            job=record.id,
            attempt=attempt.number,
            error=summary,
        )
