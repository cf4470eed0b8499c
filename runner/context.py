"""What a running job can know and say about itself.

Inside an attempt's process :func:`current_job` returns the job's id and
attempt number (so jobs can be idempotent under at-least-once delivery), and
:func:`report_progress` records a fraction and a message that the dashboard
shows live and the final record keeps. Outside a job both are harmless:
``current_job()`` returns None and progress goes nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.model import Progress, utcnow


@dataclass(frozen=True)
class JobContext:
    id: str
    job: str
    method: str
    attempt: int
    max_attempts: int
    spool: Path | None
    log_dir: Path | None


_current: JobContext | None = None


def current_job() -> JobContext | None:
    return _current


def set_current(ctx: JobContext | None) -> None:
    global _current  # noqa: PLW0603 - one context per process, set by the child
    _current = ctx


def report_progress(fraction: float | None = None, message: str | None = None) -> None:
    """Record progress of the running job: fraction in [0, 1], message free text."""
    ctx = _current
    if ctx is None or ctx.spool is None:
        return
    if fraction is not None:
        fraction = min(1.0, max(0.0, float(fraction)))
    from runner.spool import Spool

    spool = Spool(ctx.spool, log_dir=ctx.log_dir, create=False)
    spool.write_progress(ctx.id, Progress(fraction=fraction, message=message, updated_at=utcnow()))
