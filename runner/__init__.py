"""jobspool: background jobs for Python with no broker and no database.

Public API::

    from jobspool import run_background_job, get_job, wait_for_job
    from jobspool import current_job, report_progress, Retry
    from jobspool import cancel_job, retry_job, resubmit_job, list_jobs
    from jobspool import pause_jobs, resume_jobs, paused

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

    from jobspool.batch import run_background_jobs
    from jobspool.context import current_job, report_progress
    from jobspool.errors import (
        ConfigError,
        Conflict,
        InvalidJobFile,
        InvalidParams,
        JobNotFound,
        JobRejected,
        JobspoolError,
        NotAllowed,
        NotPublished,
        Retry,
        SpoolFull,
    )
    from jobspool.steering import (
        cancel_job,
        list_jobs,
        pause_jobs,
        paused,
        resubmit_job,
        resume_jobs,
        retry_job,
    )
    from jobspool.submit import WaitTimeout, get_job, run_background_job, wait_for_job

_WHERE = {
    "current_job": "jobspool.context",
    "report_progress": "jobspool.context",
    "ConfigError": "jobspool.errors",
    "Conflict": "jobspool.errors",
    "InvalidJobFile": "jobspool.errors",
    "InvalidParams": "jobspool.errors",
    "JobNotFound": "jobspool.errors",
    "JobRejected": "jobspool.errors",
    "JobspoolError": "jobspool.errors",
    "NotAllowed": "jobspool.errors",
    "NotPublished": "jobspool.errors",
    "Retry": "jobspool.errors",
    "SpoolFull": "jobspool.errors",
    "WaitTimeout": "jobspool.submit",
    "cancel_job": "jobspool.steering",
    "list_jobs": "jobspool.steering",
    "retry_job": "jobspool.steering",
    "resubmit_job": "jobspool.steering",
    "pause_jobs": "jobspool.steering",
    "resume_jobs": "jobspool.steering",
    "paused": "jobspool.steering",
    "get_job": "jobspool.submit",
    "run_background_job": "jobspool.submit",
    "run_background_jobs": "jobspool.batch",
    "wait_for_job": "jobspool.submit",
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
    "NotPublished",
    "Retry",
    "SpoolFull",
    "WaitTimeout",
    "cancel_job",
    "current_job",
    "get_job",
    "list_jobs",
    "pause_jobs",
    "paused",
    "report_progress",
    "resubmit_job",
    "resume_jobs",
    "retry_job",
    "run_background_job",
    "run_background_jobs",
    "wait_for_job",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'jobspool' has no attribute {name!r}")
    __import__(module)
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value
