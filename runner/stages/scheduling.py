"""Scheduling: the runner's recurring schedules, each tick queued exactly once.

Owns, per schedule in the config in force, what this runner knows of its
ticks: the newest tick settled (claimed by any runner, or passed over by the
missed policy), when the next one falls due, and which claims it has seen
left unsettled and since when (on its own monotonic clock). Each step it
asks :func:`jobspool.recurring.due_ticks` what is due and settles each tick
through :mod:`jobspool.ticks` (claim, overlap check, publish, done mark);
every ``poll_seconds`` it lists each schedule's claims, repairs the ones
left unsettled for a lease, and now and then prunes old ones. It returns to
the loop only how long it may sleep until the next tick.

Invariants: ticks are settled oldest first, and an I/O error stops the
schedule's pass there (so a later tick is never claimed before an earlier
one that is due); a schedule removed from the config is dropped at once; a
schedule whose timing changed counts every tick up to the reload as settled
(the new timing takes effect from its next tick); errors are logged, never
fatal to the loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jobspool import logs
from jobspool.config import Config
from jobspool.recurring import DUE_LIMIT, ScheduleSpec, due_ticks
from jobspool.spool import Spool
from jobspool.states import Status
from jobspool.ticks import (
    MAX_GENERATIONS,
    PRUNE_MARGIN,
    QUEUED,
    SKIPPED,
    ClaimRecord,
    TickFiles,
    Ticks,
    tick_record,
)

PRUNE_SECONDS = 60.0
ERROR_BACKOFF = 1.0
UNFINISHED = (Status.PENDING, Status.RUNNING)


@dataclass
class _Known:
    spec: ScheduleSpec
    after: datetime | None = None  # newest tick settled
    since: datetime | None = None  # first seen in the spool: nothing before is due
    next_due: datetime | None = None  # None: compute at the next step
    unsettled: dict[datetime, float] = field(default_factory=dict)  # first seen (monotonic)
    given_up: set[datetime] = field(default_factory=set)


def _wall(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


class Scheduling:
    def __init__(self, spool: Spool, config: Config, host: str) -> None:
        self.spool = spool
        self.ticks = Ticks(spool)
        self.host = host
        self.config = config
        self.known: dict[str, _Known] = {n: _Known(s) for n, s in config.settings.schedules.items()}
        self.next_scan = 0.0
        self.next_prune = 0.0
        self.runner = ""  # our runner id, as the loop says at each step

    def configure(self, config: Config, wall: float) -> None:
        """A reloaded config: removed schedules stop, changed timings restart."""
        self.config = config
        new = config.settings.schedules
        for name in set(self.known) - set(new):
            logs.event("schedule_removed", schedule=name)
            del self.known[name]
        for name, spec in new.items():
            old = self.known.get(name)
            if old is None:
                self.known[name] = _Known(spec)
            elif old.spec.timing() != spec.timing():
                logs.event("schedule_changed", schedule=name)
                self.known[name] = _Known(spec, after=_wall(wall))
            else:
                old.spec = spec

    # ------------------------------------------------------------ the step

    def run(self, now: float, wall: float, runner: str) -> None:
        """Queue what is due at wall; every poll_seconds, look at the claims."""
        self.runner = runner
        if now >= self.next_scan:
            self.next_scan = now + self.config.settings.poll_seconds
            self._scan(now, wall)
        at = _wall(wall)
        for name, known in self.known.items():
            if known.next_due is None or at >= known.next_due:
                self._settle_due(name, known, at)

    def wake_in(self, now: float, wall: float) -> float:
        """Seconds until the next tick of any schedule or the next scan."""
        wait = max(0.0, self.next_scan - now)
        at = _wall(wall)
        for known in self.known.values():
            if known.next_due is None:
                return 0.0
            wait = min(wait, max(0.0, (known.next_due - at).total_seconds()))
        return wait

    def _settle_due(self, name: str, known: _Known, at: datetime) -> None:
        spec = known.spec
        due = due_ticks(spec, at, known.after)
        for tick in due:
            try:
                self._settle(name, spec, tick)
            except OSError as exc:
                logs.event("tick_error", logs.ERROR, schedule=name, tick=tick, error=exc)
                known.next_due = at + timedelta(seconds=ERROR_BACKOFF)
                return
            known.after = tick
        if len(due) >= DUE_LIMIT:
            known.next_due = at  # a long catch-up goes on at the next step
            return
        # A cron expression may match nothing for decades (cronsim gives up
        # after 50 years): look again tomorrow rather than spin.
        known.next_due = spec.rule().next_after(at) or at + timedelta(days=1)

    def settle(self, name: str, tick: datetime, runner: str) -> None:
        """Settle one tick of a configured schedule now (as a due tick is)."""
        self.runner = runner
        self._settle(name, self.known[name].spec, tick)

    def _settle(self, name: str, spec: ScheduleSpec, tick: datetime) -> None:
        reason = self._overlap(name, spec, tick)
        record = tick_record(
            name, tick, generation=0, runner=self.runner, host=self.host, skip_reason=reason
        )
        self._claim_and_publish(record, spec)

    def _claim_and_publish(self, record: ClaimRecord, spec: ScheduleSpec) -> bool:
        """Claim the tick; if ours, publish its job (or record its skip) and
        mark it done. False when another runner holds the claim."""
        started = time.monotonic()
        if not self.ticks.claim(record):
            return False
        name, tick = record.schedule, record.tick
        if record.job_id is None:
            logs.event("tick_skipped", schedule=name, tick=tick, reason=record.reason)
            self.ticks.mark_done(name, tick, None, SKIPPED)
            return True
        # Fence: past half a lease since our claim began (we were paused), the tick
        # is left to a repair rather than raced (see jobspool.ticks).
        if time.monotonic() - started > self.config.settings.lease_seconds / 2:
            logs.event("tick_left_to_repair", logs.WARNING, schedule=name, tick=tick)
            return True
        if self.ticks.publish(record, spec):
            logs.event("tick_queued", schedule=name, tick=tick, job=record.job_id)
        self.ticks.mark_done(name, tick, record.job_id, QUEUED)
        return True

    def _overlap(self, name: str, spec: ScheduleSpec, tick: datetime) -> str | None:
        """Why the tick is skipped (overlap: skip, previous job unfinished), or None."""
        if spec.overlap != "skip":
            return None
        listing = self.ticks.listing(name)
        for earlier in sorted((t for t in listing if t < tick), reverse=True):
            found = self.ticks.newest_claim(name, earlier, listing[earlier])
            if found is None or found.job_id is None:
                continue  # a skipped tick: look further back
            status = self.ticks.located(found.job_id)
            if status in UNFINISHED:
                return f"previous run {found.job_id} is still {status}"
            return None
        return None

    # ------------------------------------------------------------ claims on disk

    def _scan(self, now: float, wall: float) -> None:
        prune = now >= self.next_prune
        if prune:
            self.next_prune = now + PRUNE_SECONDS
        for name, known in self.known.items():
            try:
                self._scan_one(name, known, now, wall)
                if prune:
                    self._prune(name, known.spec, wall)
            except OSError as exc:
                logs.event("tick_scan_error", logs.ERROR, schedule=name, error=exc)

    def _scan_one(self, name: str, known: _Known, now: float, wall: float) -> None:
        if known.since is None:
            # No tick before the schedule first appeared in the spool is missed.
            known.since = self.ticks.since(name, _wall(wall))
            if known.after is None or known.after < known.since:
                known.after = known.since
                known.next_due = None
        listing = self.ticks.listing(name)
        if listing:
            newest = max(listing)
            if known.after is None or newest > known.after:
                known.after = newest
                known.next_due = None
        lease = self.config.settings.lease_seconds
        unsettled = {t: f for t, f in listing.items() if not f.done and f.generations}
        known.unsettled = {t: known.unsettled.get(t, now) for t in unsettled}
        for tick, files in unsettled.items():
            if now - known.unsettled[tick] >= lease and tick not in known.given_up:
                self._repair(name, known, tick, files, now)

    def _repair(
        self, name: str, known: _Known, tick: datetime, files: TickFiles, now: float
    ) -> None:
        """A claim left unsettled for a lease: claim the next generation and,
        if ours, finish what the claimer did not."""
        found = self.ticks.newest_claim(name, tick, files)
        generation = max(files.generations) + 1
        if generation >= MAX_GENERATIONS:
            known.given_up.add(tick)
            logs.event("tick_given_up", logs.ERROR, schedule=name, tick=tick, claims=generation)
            return
        skip = found.reason or "skipped" if found is not None and found.job_id is None else None
        record = tick_record(
            name, tick, generation=generation, runner=self.runner, host=self.host, skip_reason=skip
        )
        known.unsettled[tick] = now  # whoever wins, look again only after a lease
        if self._claim_and_publish(record, known.spec):
            logs.event(
                "tick_repaired", logs.WARNING, schedule=name, tick=tick, generation=generation
            )

    def _prune(self, name: str, spec: ScheduleSpec, wall: float) -> None:
        cutoff = _wall(wall) - timedelta(seconds=spec.catch_up) - PRUNE_MARGIN
        removed = self.ticks.prune(name, cutoff)
        if removed:
            logs.event("ticks_pruned", schedule=name, files=removed)
