"""Retention: this runner's share of removing finished jobs past their age.

Owns the schedule of retention passes (at start, then every
``retention.check_seconds``), the purge lease (:mod:`jobspool.purgelease`:
one runner at a time per spool, across hosts), a pass's progress through
the terminal directories, and the one thread that removes batches. The
rule for what is due is :mod:`jobspool.retention`'s; the removal itself,
whole and crash-safe, is :mod:`jobspool.purge`'s.

A pass: take (or hold) the lease; finish what a purge cut short left in
purge/; then list each terminal directory lazily, a few milliseconds per
loop step (:data:`SCAN_BUDGET`), collecting due jobs into batches of
``retention.batch``. Each batch is removed on the purge thread (renames,
unlinks and the fsyncs between them, which would stall the loop), and its
tally comes back as a ``Published`` message carrying the batch, as the
finishing stage's publishers do; the next batch waits for it.

Invariants: the loop's share of a pass is bounded per step (listing only);
one batch at a time is in flight, and a batch is handed over only while the
lease names this runner; what a purge cut short is finished by whichever
runner holds the lease next, before anything new is staged. Nothing here
raises into the loop: an error is logged and the pass is tried again later.
Without :meth:`open` (a test driving the loop) batches run on the caller's
thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from jobspool import logs, purgesummary
from jobspool.config import Config
from jobspool.messages import Event
from jobspool.publishers import Publishers, one_by_one
from jobspool.purge import Purger, Tally, scan
from jobspool.purgelease import PurgeLease
from jobspool.retention import Candidate
from jobspool.spool import Spool
from jobspool.states import Status

SCAN_BUDGET = 0.003  # seconds of listing per loop step
ORDER = (Status.COMPLETED, Status.CANCELLED, Status.FAILED)


@dataclass
class PurgeBatch:
    """One batch for the purge thread; ``candidates`` None: finish what purge/ holds."""

    purger: Purger
    candidates: list[Candidate] | None
    tally: Tally = field(default_factory=Tally)

    def run(self) -> bool | Exception:
        """Remove the batch; never raises (the error is the result)."""
        try:
            if self.candidates is None:
                self.tally = self.purger.resume()
            else:
                self.tally = self.purger.purge(self.candidates)
        except Exception as exc:  # reported to the loop, which logs it and retries later
            return exc
        return True


class RetentionStage:
    def __init__(self, spool: Spool, config: Config) -> None:
        self.spool = spool
        self.config = config
        self.next_run = 0.0
        self.lease: PurgeLease | None = None
        self._pool: Publishers[PurgeBatch] | None = None
        self._inflight = False
        self._todo: list[Status] = []
        self._scan: Iterator[Candidate] | None = None
        self._batch: list[Candidate] = []
        self._tally = Tally()
        self._passing = False
        self._resumed = False
        self._me = ""

    @property
    def active(self) -> bool:
        """A pass is under way (a burst runner finishes it before it exits)."""
        return self._passing

    def open(self, post: Callable[[Event], None]) -> None:
        """Remove batches on the purge thread from now on."""
        self._pool = Publishers(1, one_by_one(PurgeBatch.run), post, max_group=1)

    def close(self, me: str) -> None:
        if self._pool is not None:
            self._pool.shutdown()  # the batch in flight ends (its message is dropped)
            self._pool = None
        self._end_pass()
        if self.lease is not None:
            self.lease.release(me)

    def run(self, now: float, wall: float, me: str) -> None:
        """Do one bounded piece of the current pass (or start one)."""
        self._me = me
        try:
            self._step(now, wall, me)
        except OSError as exc:
            self._failed(exc, now)

    def done(self, batch: PurgeBatch, outcome: bool | Exception) -> None:
        """A batch came back from the purge thread."""
        self._inflight = False
        self._tally.merge(batch.tally)
        if isinstance(outcome, Exception):
            self._failed(outcome, time.monotonic())
            return
        if batch.candidates is None and batch.tally.total:
            logs.event("purge_resumed", runner=self._me, removed=batch.tally.removed)
        self.next_run = 0.0  # go on at the next step

    # ------------------------------------------------------------ a pass

    def _step(self, now: float, wall: float, me: str) -> None:
        check = self.config.settings.retention.check_seconds
        self.next_run = now + check
        if self._inflight:
            return  # the message of the batch in flight wakes the loop
        if not self._passing:
            if self._resumed and not self._policy_in_force():
                return
            if not self._lease().acquire(me, now):
                return
            self._begin()
            self._hand_over(None)
            return
        if self.lease is None or not self.lease.held_by(me):
            logs.event("purge_lease_lost", logs.WARNING, runner=me)
            self._end_pass()
            return
        batch = self._collect(wall)
        if batch:
            self._hand_over(batch)
        elif self._scan is None and not self._todo:
            self._finish_pass(me)
        else:
            self.next_run = now  # more to list: the next step goes on

    def _begin(self) -> None:
        self._passing = True
        self._resumed = True
        self._tally = Tally()
        policy = self.config.settings.retention.policy()
        self._todo = [s for s in ORDER if policy.get(s) is not None]

    def _collect(self, wall: float) -> list[Candidate]:
        """List for at most SCAN_BUDGET; a full batch, or the last one, or []."""
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
            else:
                self._batch.append(found)
        listed_all = self._scan is None and not self._todo
        if len(self._batch) >= limit or (listed_all and self._batch):
            batch, self._batch = self._batch, []
            return batch
        return []

    def _hand_over(self, candidates: list[Candidate] | None) -> None:
        batch = PurgeBatch(Purger(self.spool, self.config.archive_dir), candidates)
        if self._pool is None:
            self.done(batch, batch.run())
            return
        self._inflight = True
        self._pool.submit(batch)

    def _finish_pass(self, me: str) -> None:
        tally, self._tally = self._tally, Tally()
        self._end_pass()
        if tally.total:
            archived = self.config.archive_dir is not None
            purgesummary.record(self.spool, tally.removed, by=me, archived=archived)
            logs.event("purged", runner=me, removed=tally.removed, kept=tally.kept)

    def _end_pass(self) -> None:
        if self._scan is not None:
            getattr(self._scan, "close", lambda: None)()  # closes its directory
        self._scan = None
        self._todo = []
        self._batch = []
        self._passing = False

    def _failed(self, exc: Exception, now: float) -> None:
        logs.event("retention_error", logs.ERROR, error=exc)
        self._end_pass()
        self.next_run = now + self.config.settings.retention.check_seconds

    # ------------------------------------------------------------ helpers

    def _policy_in_force(self) -> bool:
        return any(v is not None for v in self.config.settings.retention.policy().values())

    def _lease(self) -> PurgeLease:
        if self.lease is None:
            self.lease = PurgeLease(self.spool, self.config.settings.lease_seconds)
        self.lease.lease_seconds = self.config.settings.lease_seconds
        return self.lease
