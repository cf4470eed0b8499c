"""A canary for the allow-list tests: importing this module leaves a file behind.

No runner may ever import it while it handles hostile job files. The tests
point the environment variable named by MARKER_ENV at a file and check that
the file never appears; a positive control imports the module on purpose to
prove the canary works.
"""

from __future__ import annotations

import os

# Not a JOBSPOOL_* name: the test environment strips those from child processes.
MARKER_ENV = "EVIL_MARKER_PATH"


def _leave_mark(how: str) -> None:
    target = os.environ.get(MARKER_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"{how} in pid {os.getpid()}\n")


_leave_mark("imported")


class Evil:
    """What a job file would reach if it could name a class path."""

    def process(self, *args: object) -> str:
        _leave_mark("called")
        return "evil"
