"""Retention: this runner's share of removing finished jobs past their age.

Owns the schedule of retention passes (at start, then every
``retention.check_seconds``), the purge lease (:mod:`jobspool.purgelease`:
one runner at a time per spool, across hosts), and a pass's progress
through the terminal directories. The rule for what is due is
:mod:`jobspool.retention`'s; the removal itself, whole and crash-safe, is
:mod:`jobspool.purge`'s.

Invariants: work per step is bounded (a listing is read lazily for at most
:data:`SCAN_BUDGET` seconds, and at most ``retention.batch`` jobs are
removed per step), so the loop keeps claiming and finishing between
batches; a batch is removed only while the lease names this runner; what a
purge cut short (staged in purge/) is finished by whichever runner holds
the lease next, before anything new is staged. Nothing here raises into the
loop: an I/O error is logged and the pass is tried again later.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from jobspool import logs, purgesummary
from jobspool.config import Config
from jobspool.purge import Purger, Tally, scan
from jobspool.purgelease import PurgeLease
from jobspool.retention import Candidate, is_due
from jobspool.spool import Spool
from jobspool.states import Status

SCAN_BUDGET = 0.005  # seconds of listing and reading per step
BATCH_PAUSE = 0.005  # between two batches of one pass: the loop's turn
ORDER = (Status.COMPLETED, Status.CANCELLED, Status.FAILED)


class RetentionStage:
    def __init__(self, spool: Spool, config: Config) -> None:
        self.spool = spool
        self.config = config
        self.next_run = 0.0
        self.lease: PurgeLease | None = None
        self._todo: list[Status] = []
        self._scan: Iterator[Candidate] | None = None
        self._batch: list[Candidate] = []
        self._tally = Tally()
        self._resumed = False

    @property
    def active(self) -> bool:
        return self._scan is not None or bool(self._todo)

    def run(self, now: float, wall: float, me: str) -> None:
        """Do one bounded piece of the current pass (or start one)."""
        retention = self.config.settings.retention
        try:
            self._step(now, wall, me)
        except OSError as exc:
            logs.event("retention_error", logs.ERROR, error=exc)
            self._stop_pass()
            self.next_run = now + retention.check_seconds

    def close(self, me: str) -> None:
        self._stop_pass()
        if self.lease is not None:
            self.lease.release(me)

    # ------------------------------------------------------------ a pass

    def _step(self, now: float, wall: float, me: str) -> None:
        settings = self.config.settings
        if not self.active:
            if self._resumed and not self._policy_in_force():
                self.next_run = now + settings.retention.check_seconds
                return
            lease = self._lease()
            if not lease.acquire(me, now):
                self.next_run = now + settings.retention.check_seconds
                return
            self._begin(me)
        elif self.lease is None or not self.lease.held_by(me):
            logs.event("purge_lease_lost", logs.WARNING, runner=me)
            self._stop_pass()
            self.next_run = now + settings.retention.check_seconds
            return
        self._advance(wall, me)
        if self.active:
            self.next_run = now + BATCH_PAUSE
        else:
            self.next_run = now + settings.retention.check_seconds

    def _begin(self, me: str) -> None:
        purger = self._purger()
        resumed = purger.resume()
        self._resumed = True
        self._tally = Tally()
        self._tally.merge(resumed)
        policy = self.config.settings.retention.policy()
        self._todo = [s for s in ORDER if policy.get(s) is not None]
        if resumed.total:
            logs.event("purge_resumed", runner=me, removed=resumed.removed)

    def _advance(self, wall: float, me: str) -> None:
        """List and read for at most SCAN_BUDGET, then remove one batch if due."""
        policy = self.config.settings.retention.policy()
        limit = self.config.settings.retention.batch
        deadline = time.monotonic() + SCAN_BUDGET
        while len(self._batch) < limit and time.monotonic() < deadline:
            if self._scan is None:
                if not self._todo:
                    break
                self._scan = scan(self.spool, self._todo.pop(0), policy, wall)
            found = next(self._scan, None)
            if found is None:
                self._scan = None
            elif is_due(found.status, found.finished, policy, wall):
                self._batch.append(found)
        if self._batch and (len(self._batch) >= limit or not self.active):
            batch, self._batch = self._batch, []
            self._tally.merge(self._purger().purge(batch))
        if not self.active and not self._batch:
            self._finish_pass(me)

    def _finish_pass(self, me: str) -> None:
        tally, self._tally = self._tally, Tally()
        if tally.total:
            archived = self.config.archive_dir is not None
            purgesummary.record(self.spool, tally.removed, by=me, archived=archived)
            logs.event("purged", runner=me, removed=tally.removed, kept=tally.kept)

    def _stop_pass(self) -> None:
        if self._scan is not None:
            close = getattr(self._scan, "close", None)
            if close is not None:
                close()
        self._scan = None
        self._todo = []
        self._batch = []

    # ------------------------------------------------------------ helpers

    def _policy_in_force(self) -> bool:
        return any(v is not None for v in self.config.settings.retention.policy().values())

    def _lease(self) -> PurgeLease:
        if self.lease is None:
            self.lease = PurgeLease(self.spool, self.config.settings.lease_seconds)
        self.lease.lease_seconds = self.config.settings.lease_seconds
        return self.lease

    def _purger(self) -> Purger:
        return Purger(self.spool, self.config.archive_dir)
