"""jobspool: background jobs for Python with no broker and no database.

Public API::

    from runner import run_background_job, get_job, wait_for_job
    from runner import current_job, report_progress, Retry
"""

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
