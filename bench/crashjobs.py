"""The job the power-loss harness runs: each run leaves one line in a ledger.

The line ("job-id attempt") is written in one O_APPEND write, so a run that
a crash cuts short still counts as a run and no two runs share a line. The
test suite's own ``Ledger`` job is this class.
"""

from __future__ import annotations

import os

from jobspool import current_job


class Ledger:
    """Appends 'job-id attempt' to a ledger in one O_APPEND write."""

    def record(self, ledger: str) -> str:
        ctx = current_job()
        job_id = ctx.id if ctx else "inline"
        line = f"{job_id} {ctx.attempt if ctx else 0}\n".encode()
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return job_id
