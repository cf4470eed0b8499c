"""jobspool: background jobs for Python with no broker and no database.

Public API::

    from runner import run_background_job, get_job, wait_for_job
    from runner import current_job, report_progress, Retry

Names are imported on first use (PEP 562), so a job process that only needs
``current_job`` does not load the submit machinery: the fork server stays
small and every fork of it stays cheap.
"""

from __future__ import annotations

import sys

# Not typing.TYPE_CHECKING: the fork server imports this package, and
# typing alone would add over half a megabyte to every fork of it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runner.context import current_job, report_progress
    from runner.errors import (
        ConfigError,
        Conflict,
        InvalidJobFile,
        InvalidParams,
        JobNotFound,
        JobRejected,
        JobspoolError,
        NotAllowed,
        Retry,
        SpoolFull,
    )
    from runner.submit import WaitTimeout, get_job, run_background_job, wait_for_job

_WHERE = {
    "current_job": "runner.context",
    "report_progress": "runner.context",
    "ConfigError": "runner.errors",
    "Conflict": "runner.errors",
    "InvalidJobFile": "runner.errors",
    "InvalidParams": "runner.errors",
    "JobNotFound": "runner.errors",
    "JobRejected": "runner.errors",
    "JobspoolError": "runner.errors",
    "NotAllowed": "runner.errors",
    "Retry": "runner.errors",
    "SpoolFull": "runner.errors",
    "WaitTimeout": "runner.submit",
    "get_job": "runner.submit",
    "run_background_job": "runner.submit",
    "wait_for_job": "runner.submit",
}

__all__ = [
    "ConfigError",
    "Conflict",
    "InvalidJobFile",
    "InvalidParams",
    "JobNotFound",
    "JobRejected",
    "JobspoolError",
    "NotAllowed",
    "Retry",
    "SpoolFull",
    "WaitTimeout",
    "current_job",
    "get_job",
    "report_progress",
    "run_background_job",
    "wait_for_job",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    __import__(module)
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value
