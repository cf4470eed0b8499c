"""Live progress, as the runner and the readers see it.

Owns reading and removing ``logs/jobs/<id>.progress.json``, the side file
in which a running job reports its progress (the job's own side, which
writes it, is :func:`jobspool.context.report_progress`; the file's name is
defined there, in the one module the fork server may import). The file is
not a job file and not part of the spool's protocol: it lives beside the
job's log, is read without trusting it (anything that is not a valid
progress record reads as no progress), and is removed once the attempt's
outcome, which keeps the last report, is published. Removal goes through
``spool.ops`` (invariant 10).
"""

from __future__ import annotations

from pathlib import Path

from jobspool.context import progress_file
from jobspool.model import Progress
from jobspool.spool import Spool


def progress_path(spool: Spool, job_id: str) -> Path:
    return Path(progress_file(spool.log_dir_str, job_id))


def read_progress(spool: Spool, job_id: str) -> Progress | None:
    # Called once per finished attempt, and most jobs never report
    # progress: a plain open on a string path is the cheap way to know.
    try:
        with open(progress_file(spool.log_dir_str, job_id), "rb") as fh:
            return Progress.model_validate_json(fh.read())
    except (OSError, ValueError):
        return None


def clear_progress(spool: Spool, job_id: str) -> None:
    spool.ops.unlink_quiet(progress_path(spool, job_id))
