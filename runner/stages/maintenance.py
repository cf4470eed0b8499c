"""Maintenance: the periodic sweep of what interrupted work leaves behind.

Owns the schedule of the sweep (at start, then every minute) and what it
does: one rule for the same id in two directories (``leftovers``), removal
of old tmp/ files (never published, so never a job), and quarantine of
strays in running/ (a name there that is not a claim was put there by hand).

Invariants: nothing is deleted but tmp/ leftovers past their age limit; a
stray goes to corrupt/ with its reason (invariant 5); recent files are left
alone, since their writer may still be at work.
"""

from __future__ import annotations

import contextlib
import os
import time

from jobspool import leftovers, logs, unique
from jobspool.config import Config
from jobspool.names import RunningName
from jobspool.spool import Spool
from jobspool.states import Status

TMP_MAX_AGE = 3600.0
MAINTENANCE_SECONDS = 60.0


class Maintenance:
    def __init__(self, spool: Spool, config: Config) -> None:
        self.spool = spool
        self.config = config
        self.next_run = 0.0

    def run(self, now: float) -> None:
        self.next_run = now + MAINTENANCE_SECONDS
        lease = self.config.settings.lease_seconds
        for note in leftovers.resolve_duplicates(self.spool, lease):
            logs.event("duplicate_resolved", logs.WARNING, note=note)
        for name in leftovers.clean_tmp(self.spool, TMP_MAX_AGE):
            logs.event("tmp_removed", file=name)
        self._quarantine_strays(time.time() - lease)
        for note in unique.sweep(self.spool, self.config.settings.unique_grace_seconds):
            logs.event("unique_released", logs.WARNING, note=note)

    def _quarantine_strays(self, older_than: float) -> None:
        """Anything in running/ that is not a claim name was put there by hand."""
        running = self.spool.dir(Status.RUNNING)
        for name in self.spool.ops.scandir_names(running):
            if RunningName.parse(name) is not None or name.startswith("."):
                continue
            path = self.spool.path_in(Status.RUNNING, name)
            with contextlib.suppress(OSError):
                if os.lstat(path).st_mtime < older_than:
                    self.spool.quarantine(path, "not a claim: running/ holds only claimed jobs")
                    logs.event("corrupt", logs.ERROR, file=name, reason="stray file in running/")
