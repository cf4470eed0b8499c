"""The two seed logs: ``background_jobs.log`` and ``background_jobs_errors.log``.

One line per transition (submitted, started, completed, failed, retry
scheduled, cancelled, recovered...) in ``key=value`` form, rotating by size.
Errors with tracebacks also go to the errors log. Several processes may
append to the same files; each record is one write in append mode.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any

LOGGER = "jobspool"


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def setup(
    log_dir: Path,
    *,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
    console: bool = False,
) -> logging.Logger:
    """Attach the rotating file handlers (idempotent per directory)."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    log_dir.mkdir(parents=True, exist_ok=True)
    fmt = _UtcFormatter(_FORMAT)
    main = logging.handlers.RotatingFileHandler(
        log_dir / "background_jobs.log", maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    main.setLevel(logging.INFO)
    errors = logging.handlers.RotatingFileHandler(
        log_dir / "background_jobs_errors.log",
        maxBytes=max_bytes,
        backupCount=backups,
        encoding="utf-8",
    )
    errors.setLevel(logging.ERROR)
    for handler in (main, errors):
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(fmt)
        logger.addHandler(stream)
    return logger


def close() -> None:
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def _fmt(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def event(action: str, level: int = logging.INFO, exc_text: str | None = None, **fields: Any) -> None:
    """Log one transition: ``completed job=ID name=SampleJob.process attempt=1 ...``."""
    parts = [action] + [f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None]
    message = " ".join(parts)
    if exc_text:
        message += "\n" + exc_text.rstrip()
    logging.getLogger(LOGGER).log(level, message)
