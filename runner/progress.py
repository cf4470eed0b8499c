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

Job code writes the file, and can put anything at its name: it is opened
like every file beside a job's log (:mod:`jobspool.sidefiles`: no link
followed, no FIFO waited on, a regular single-linked file only) and read up
to :data:`MAX_BYTES`; whatever else is there reads as no progress.
"""

from __future__ import annotations

from pathlib import Path

from jobspool import sidefiles
from jobspool.context import progress_file
from jobspool.model import Progress
from jobspool.spool import Spool

# A report holds a fraction, a message of at most 1,000 characters and a time.
MAX_BYTES = 16 * 1024


def progress_path(spool: Spool, job_id: str) -> Path:
    return Path(progress_file(spool.log_dir_str, job_id))


def read_progress(spool: Spool, job_id: str) -> Progress | None:
    data = sidefiles.read_head(progress_file(spool.log_dir_str, job_id), MAX_BYTES)
    if data is None or len(data) > MAX_BYTES:
        return None
    try:
        return Progress.model_validate_json(data)
    except ValueError:
        return None


def clear_progress(spool: Spool, job_id: str) -> None:
    spool.ops.unlink_quiet(progress_path(spool, job_id))
