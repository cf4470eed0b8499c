"""Liveness: this runner's lease, its fencing, and the recovery of dead runners.

Owns the runner's identity (its id, lease and heartbeat, invariant 6), the
times of the next beat and the next look at the other runners, and the
recovery of a dead runner's claims: each is taken over by rename (so exactly
one live runner recovers it), its attempt is recorded as lost, and its
orphaned processes are killed where this host can see them, and the
spool-wide slots it held (:mod:`jobspool.slots`) are freed.

Invariants: a runner that finds its own lease lapsed (it was paused or cut
off) fences itself before acting on anything else: the loop kills its
attempts as lost, and it re-registers under a new id, so nothing it still
holds can be published under the old claim (invariant 4). Liveness of
others is judged on this runner's own monotonic clock, never by comparing
wall clocks (``leases.Liveness``). Recovery never publishes: it returns
each recovered attempt as a :class:`~jobspool.stages.Finish`. Nothing
found at this runner's own names in runners/ crashes it (``leases.Lease``);
a heartbeat that cannot be written is logged once while it lasts.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from datetime import datetime

from jobspool import leftovers, logs, slots
from jobspool.attempts import Active, Report
from jobspool.config import Config
from jobspool.errors import InvalidJobFile
from jobspool.fsops import NotRegularFile, StrPath
from jobspool.heartbeats import BeatJob, Heartbeat
from jobspool.leases import Lease, Liveness, kill_orphans, take_over
from jobspool.model import ErrorInfo, Outcome, utcnow
from jobspool.names import RunningName, hostname
from jobspool.spool import Spool
from jobspool.stages import Finish
from jobspool.stages.intake import quarantine


def new_runner_id() -> str:
    return f"{hostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def attempt_seen(beat: Heartbeat | None, claim: RunningName) -> tuple[int | None, datetime]:
    """What a dead runner's last heartbeat said about one of its attempts:
    its pid and start (unknown: no pid, started now)."""
    job = beat.attempt(claim.job_id, claim.attempt) if beat is not None else None
    return (job.pid, job.started_at) if job is not None else (None, utcnow())


class LivenessStage:
    def __init__(self, spool: Spool, config: Config) -> None:
        self.spool = spool
        self.config = config
        self.runner_id = new_runner_id()
        self.lease = Lease(spool, self.runner_id)
        self.liveness = Liveness(spool, self.runner_id, config.settings.lease_seconds)
        self.last_beat = 0.0
        self.next_beat = 0.0
        self.next_check = 0.0
        self._beat_failing = False  # said once, until a beat is written again

    def configure(self, config: Config) -> None:
        self.config = config
        self.liveness.lease = config.settings.lease_seconds

    @property
    def host(self) -> str:
        return self.lease.host

    # ------------------------------------------------------------ our lease

    def register(self, now: float) -> None:
        self.lease.acquire()
        self.last_beat = now

    def release(self) -> None:
        self.lease.release()

    def lapsed(self, now: float) -> bool:
        """Were we silent past our lease? Then others may own our jobs."""
        return now - self.last_beat > self.config.settings.lease_seconds

    def beat(self, now: float, jobs: Sequence[BeatJob]) -> None:
        """Write our heartbeat. One that cannot be written is logged (once
        while it lasts) and does not count: past the lease we fence ourselves."""
        self.next_beat = now + self.config.settings.heartbeat_seconds
        try:
            self.lease.beat(jobs)
        except OSError as exc:
            if not self._beat_failing:
                logs.event("heartbeat_error", logs.ERROR, runner=self.runner_id, error=exc)
            self._beat_failing = True
            return
        if self._beat_failing:
            logs.event("heartbeat_restored", runner=self.runner_id)
            self._beat_failing = False
        self.last_beat = now

    def fence(self, now: float, running: int) -> None:
        """Our lease lapsed: give up our identity and register a new one.

        The loop has killed our attempts as lost first; their claims carry
        the old id, so no finish of theirs can replace a recovered copy."""
        logs.event("lease_lost", logs.ERROR, runner=self.runner_id, running=running)
        old = self.runner_id
        self.lease.release()
        self.runner_id = new_runner_id()
        self.lease = Lease(self.spool, self.runner_id)
        self.liveness = Liveness(self.spool, self.runner_id, self.config.settings.lease_seconds)
        self.last_beat = now  # retried no sooner than one lease from now
        try:
            self.lease.acquire()
        except OSError as exc:
            logs.event("register_error", logs.ERROR, runner=self.runner_id, error=exc)
            return
        logs.event("runner_reregistered", old=old, runner=self.runner_id)

    # ------------------------------------------------------------ other runners

    def recover_dead(self, now: float) -> list[Finish]:
        """Take over the claims of runners that died; each becomes a lost attempt."""
        self.next_check = now + self.config.settings.heartbeat_seconds
        owners = {claim.runner for claim, _ in self.spool.running_entries()}
        held = slots.scan(self.spool)
        finished: list[Finish] = []
        for runner, beat in self.liveness.dead(now, owners | held.holders()).items():
            killed = kill_orphans(beat)
            for claim, path in take_over(self.spool, runner, self.runner_id):
                done = self._recover(claim, path, killed, beat)
                if done is not None:
                    finished.append(done)
            self._free_slots(held, runner)
            self.liveness.forget(runner)
        return finished

    def _free_slots(self, held: slots.Scan, runner: str) -> None:
        """A dead runner's spool-wide slots, freed once its claims are taken over."""
        try:
            freed = slots.free_dead(self.spool, held, runner)
        except OSError as exc:  # tried again at the next look
            logs.event("slot_error", logs.ERROR, dead_runner=runner, error=exc)
            return
        if freed:
            logs.event("slots_freed", logs.WARNING, dead_runner=runner, slots=freed)

    def _recover(
        self, claim: RunningName, path: StrPath, killed: list[int], beat: Heartbeat | None
    ) -> Finish | None:
        done = leftovers.terminal_copy(self.spool, claim.job_id)
        if done is not None:  # never run again what was published as finished
            reason = f"duplicate of {done} (its runner died after publishing it)"
            quarantine(self.spool, os.path.basename(path), path, reason, force=True)
            return None
        try:
            job = self.spool.read_job(path)
        except (InvalidJobFile, NotRegularFile, OSError) as exc:
            reason = f"unreadable running file: {exc}"
            quarantine(self.spool, os.path.basename(path), path, reason, force=True)
            return None
        job = job.model_copy(update={"id": claim.job_id})
        logs.event(
            "recovered",
            logs.WARNING,
            job=claim.job_id,
            dead_runner=claim.runner,
            attempt=claim.attempt,
            orphans_killed=len(killed) or None,
        )
        pid, started = attempt_seen(beat, claim)
        act = Active(claim.filename, claim, path, job, pid, started, 0.0)
        act.host = beat.host if beat is not None else "unknown"
        error = ErrorInfo(
            type="RunnerLost", message=f"runner {claim.runner} died during the attempt"
        )
        return Finish(act, Report(Outcome.LOST, error=error))

    def wake_times(self) -> list[float]:
        return [self.next_beat, self.next_check]
