"""What a running job can know and say about itself.

Inside an attempt's process :func:`current_job` returns the job's id and
attempt number (so jobs can be idempotent under at-least-once delivery), and
:func:`report_progress` records a fraction and a message that the dashboard
shows live and the final record keeps. Outside a job both are harmless:
``current_job()`` returns None and progress goes nowhere.

This module is imported by every attempt, so it stays light: no pydantic
models here. Progress is plain JSON that readers validate.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class JobContext:
    id: str
    job: str
    method: str
    attempt: int
    max_attempts: int
    spool: str | None
    log_dir: str | None


_current: JobContext | None = None
_wrote_progress = False  # by the current job, in this process


def current_job() -> JobContext | None:
    return _current


def set_current(ctx: JobContext | None) -> None:
    global _current, _wrote_progress
    _current = ctx
    _wrote_progress = False


def progress_written() -> bool:
    """Whether the current job has recorded progress (so the runner need not
    look for a progress file when the job said it wrote none)."""
    return _wrote_progress


def progress_name(job_id: str) -> str:
    """The file name of a job's live progress, in the job logs' directory."""
    return f"{job_id}.progress.json"


def progress_file(log_dir: str | Path, job_id: str) -> Path:
    """Where a job's live progress is kept (beside its log)."""
    return Path(log_dir) / "jobs" / progress_name(job_id)


def report_progress(fraction: float | None = None, message: str | None = None) -> None:
    """Record progress of the running job: fraction in [0, 1], message free text."""
    global _wrote_progress
    ctx = _current
    if ctx is None or ctx.log_dir is None:
        return
    if fraction is not None:
        fraction = min(1.0, max(0.0, float(fraction)))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
    body = {
        "fraction": fraction,
        "message": None if message is None else str(message)[:1000],
        "updated_at": stamp,
    }
    path = progress_file(ctx.log_dir, ctx.id)
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}")
    _wrote_progress = True  # before the file: a runner reads it if in doubt
    tmp.write_text(json.dumps(body), encoding="utf-8")
    os.replace(tmp, path)
