"""What a running job can know and say about itself.

Inside an attempt's process :func:`current_job` returns the job's id and
attempt number (so jobs can be idempotent under at-least-once delivery), and
:func:`report_progress` records a fraction and a message that the dashboard
shows live and the final record keeps. Outside a job both are harmless:
``current_job()`` returns None and progress goes nowhere.

This module is imported by the fork server, so it stays light: no pydantic,
no dataclasses, no pathlib (each import is copied into every attempt's
process). Progress is plain JSON that readers validate.
"""

from __future__ import annotations

import os
import time

_FIELDS = ("id", "job", "method", "attempt", "max_attempts", "spool", "log_dir")


class JobContext:
    """Who the running job is: its id, name, method and attempt number (read-only)."""

    __slots__ = ("attempt", "id", "job", "log_dir", "max_attempts", "method", "spool")
    id: str
    job: str
    method: str
    attempt: int
    max_attempts: int
    spool: str | None
    log_dir: str | None

    def __init__(
        self,
        *,
        id: str,
        job: str,
        method: str,
        attempt: int,
        max_attempts: int,
        spool: str | None,
        log_dir: str | None,
    ) -> None:
        fields = (id, job, method, attempt, max_attempts, spool, log_dir)
        for name, value in zip(_FIELDS, fields, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"JobContext is read-only: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JobContext):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in _FIELDS))

    def __repr__(self) -> str:
        return f"JobContext(id={self.id!r}, job={self.job!r}, attempt={self.attempt})"


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


def progress_file(log_dir: str, job_id: str) -> str:
    """Where a job's live progress is kept (beside its log)."""
    return os.path.join(log_dir, "jobs", progress_name(job_id))


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
    import json  # only jobs that report progress pay for it

    path = progress_file(ctx.log_dir, ctx.id)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.urandom(4).hex()}")
    _wrote_progress = True  # before the file: a runner reads it if in doubt
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(json.dumps(body))
    os.replace(tmp, path)
