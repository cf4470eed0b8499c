"""The runner loop: wake on messages and timers, ask each stage for its work.

One thread owns all decisions. Other threads (the watcher, the publishers),
the fork server and the signal handlers only send typed messages
(``messages``) to the loop's :class:`~jobspool.mailbox.Mailbox`. The loop is
wiring: each concern is a stage with one owner (``stages``), and what a stage
returns is routed here to the stage that acts on it. :meth:`Runner.step`
takes ``now`` (monotonic), does everything due at that instant, and returns
how long it may sleep, so a test can drive the loop one step at a time
(``launcher`` lets it stand in for the fork server).

Per step:

1. if our own lease lapsed (we were paused), fence first: kill our attempts
   as lost and re-register, before acting on any message (invariant 4);
2. route the messages: new pending files to intake, the launcher's news to
   dispatch, finished publications back to finishing;
3. heartbeat; periodic rescan of pending/ (the correctness path, invariant
   8) with the config reload; cancel requests; schedules; one bounded
   batch of retention;
4. kill attempts past their timeout, retry finishes that hit I/O errors;
5. claim the best due jobs while slots are free; then the leftovers sweep
   (at the first step, then every minute) and recovery of dead runners
   (invariant 6), in that order; then leave the order snapshot of a
   backlog (once, after the first claims: nothing waits for it), then
   record the attempts that freed them (their records wait for the
   refill: the next attempts start that much sooner).

What happens to a job after an attempt is decided by ``retry.decide`` alone.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import time
from typing import Any

from jobspool import access, checks, logs
from jobspool.config import Config
from jobspool.configwatch import ConfigWatch
from jobspool.mailbox import Mailbox
from jobspool.messages import (
    AttemptExited,
    AttemptReported,
    AttemptStarted,
    Event,
    FileChanged,
    LauncherGone,
    Published,
    RescanNeeded,
    StopRequested,
)
from jobspool.model import Job, Outcome
from jobspool.spool import Spool
from jobspool.stages import Finish, Rejection
from jobspool.stages.dispatch import Dispatch, MakeLauncher
from jobspool.stages.finishing import Finishing, Publication
from jobspool.stages.intake import Intake
from jobspool.stages.liveness import LivenessStage
from jobspool.stages.maintenance import Maintenance
from jobspool.stages.retention import PurgeBatch, RetentionStage
from jobspool.stages.scheduling import Scheduling

# Attempts that never report after the grace period are given up this much later.
STOP_ABANDON_SECONDS = 30.0


class Runner:
    def __init__(
        self,
        config: Config,
        *,
        burst: bool = False,
        watch: bool = True,
        overrides: dict[str, Any] | None = None,
        console: bool = False,
        launcher: MakeLauncher | None = None,
    ) -> None:
        self.config = config
        self.burst = burst
        self.watch = watch
        self.console = console
        s = config.settings
        # The allowed classes are imported in a process of their own while
        # this one reads pending/: no other part is built, and nothing is
        # written (but the spool's key, made on first use where none is
        # yet, as any start would), before they pass.
        check = checks.PendingCheck(config)
        try:
            self.spool = Spool.open(
                config.spool_dir,
                durable=s.durable,
                max_job_bytes=s.max_job_bytes,
                log_dir=config.log_dir,
            )
            self.intake = Intake(self.spool)
            self.intake.look_ahead()
        except BaseException:
            check.close()
            raise
        check.require()
        self.events = Mailbox()
        # A reload is held to the start's standard: its classes and methods
        # must exist (checked off the loop, on the watch's own thread).
        self.config_watch = ConfigWatch(
            config, overrides or {}, verify=checks.require_valid_allow_list
        )
        self.dispatch = Dispatch(self.spool, config, launcher)
        self.liveness = LivenessStage(self.spool, config)
        self.finishing = Finishing(self.spool, config, self.liveness.host)
        self.maintenance = Maintenance(self.spool, config)
        self.scheduling = Scheduling(self.spool, config, self.liveness.host)
        self.retention = RetentionStage(self.spool, config)
        self.stopping = False
        self.stop_deadline = 0.0
        self.next_rescan = 0.0

    @property
    def runner_id(self) -> str:
        return self.liveness.runner_id

    # ------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Run until stopped (or, with burst, until nothing is due or running)."""
        # What exists now (modules, classes, pydantic's schemas) lives as
        # long as the process: full collections need not walk it again.
        gc.freeze()
        logs.setup(
            self.config.log_dir,
            max_bytes=self.config.settings.logs.max_bytes,
            backups=self.config.settings.logs.backups,
            console=self.console,
        )
        self.events.own()
        self._install_signals()
        watcher = None
        try:
            self.start(time.monotonic())
            if self.watch:
                from jobspool.watcher import Watcher

                watcher = Watcher(self.spool.root, self.events.put)
                watcher.start()
            # The first scan overlaps the fork server's start-up. On a
            # backlog it takes a while: the next is a full period after it
            # ends (the watcher sees what comes meanwhile).
            self._rescan(time.monotonic())
            self.next_rescan = time.monotonic() + self.config.settings.poll_seconds
            self.dispatch.wait_ready()
            while (wait := self.step(time.monotonic())) is not None:
                self.events.wait(wait, self.dispatch.fd)
        finally:
            if watcher is not None:
                watcher.stop()
            self.close()
            logs.close()
        return 0

    def start(self, now: float) -> None:
        """Start the launcher and the publishers, and register our lease."""
        self.dispatch.open(self.events.put)
        self.finishing.open(self.events.put)
        self.retention.open(self.events.put)
        self.liveness.register(now)
        logs.event("runner_started", runner=self.runner_id, spool=self.spool.root)
        access.warn_at_start(self.spool)

    def close(self) -> None:
        self.retention.close(self.runner_id)
        self.finishing.close()
        self.dispatch.close()
        self.events.close()
        self.config_watch.close()
        self.liveness.release()
        logs.event("runner_stopped", runner=self.runner_id)

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: object) -> None:
            self.events.put(StopRequested(signum), wake=True)

        with contextlib.suppress(ValueError):  # not the main thread: caller handles stop
            signal.signal(signal.SIGTERM, handler)
            signal.signal(signal.SIGINT, handler)

    def request_stop(self, now: float, immediate: bool = False) -> None:
        if self.stopping and not immediate:
            immediate = True  # a second signal: hand back now
        if not self.stopping:
            logs.event("runner_stopping", runner=self.runner_id, running=len(self.dispatch.active))
        self.stopping = True
        self.stop_deadline = now if immediate else now + self.config.settings.grace_seconds

    # ------------------------------------------------------------ the step

    def step(self, now: float, wall: float | None = None) -> float | None:
        """Do all due work; return seconds until the next wake, or None to exit."""
        wall = time.time() if wall is None else wall  # the same instant as now
        self.dispatch.tick(now, wall)
        if self.liveness.lapsed(now):
            self._fence(now)
        self._drain(now)
        if self.intake.rechecking:
            self.intake.run_rechecks(now)
        if now >= self.liveness.next_beat:
            self.liveness.beat(now, self.dispatch.beat_jobs())
        if now >= self.next_rescan:
            self._rescan(now)
        if self.dispatch.control_dirty:
            self.dispatch.check_control()
        self.scheduling.run(now, wall, self.runner_id)
        if now >= self.retention.next_run and not self.stopping:
            self.retention.run(now, wall, self.runner_id)
        self.dispatch.enforce_timeouts(now)
        for record in self.finishing.retry_unfinished(now):
            self._schedule_retry(record)
        if self.stopping:
            self._upkeep(now)
            self._finish(self.dispatch.take_finished())
            return self._stop_step(now)
        self._claim(now, wall)
        self._upkeep(now)
        self.intake.save_order()
        self._finish(self.dispatch.take_finished())
        if self.burst and self._idle(wall):
            return None
        return self._next_wake(now, wall)

    def _upkeep(self, now: float) -> None:
        """The leftovers sweep, then recovery of dead runners, when due.

        After the claims: a claim's full load refuses by itself every
        leftover the sweep settles, so a backlog's first jobs need not wait
        for the sweep (0.2-0.3 s over 100,000 pending files). Recovery comes
        after the sweep, always: a dead runner's claim may be the leftover
        of a move that finished, which leftovers rule on."""
        if now >= self.maintenance.next_run:
            self.maintenance.run(now)
        if now >= self.liveness.next_check:
            self._finish(self.liveness.recover_dead(now))

    def _drain(self, now: float) -> None:
        self.dispatch.pump()
        while (msg := self.events.get_nowait()) is not None:
            self._handle(msg, now)

    def _handle(self, msg: Event, now: float) -> None:
        match msg:
            case FileChanged(path):
                folder, name = os.path.split(path)
                if os.path.basename(folder) == "control":
                    self.dispatch.control_changed()
                else:
                    self.intake.file_appeared(name)
            case AttemptStarted(token, pid):
                self.dispatch.started(token, pid, self.runner_id)
            case AttemptReported(token, pid, report):
                self.dispatch.reported(token, pid, report, self.runner_id)
            case AttemptExited(token, code):
                self.dispatch.exited(token, code)
            case Published(PurgeBatch() as batch, outcome):
                self.retention.done(batch, outcome)
            case Published(pub, outcome):
                self._published(pub, outcome)
            case RescanNeeded():
                self.next_rescan = 0.0
            case StopRequested():
                self.request_stop(now)
            case LauncherGone():
                if not self.stopping:
                    self.dispatch.launcher_gone()

    def _published(self, pub: Publication, outcome: bool | Exception) -> None:
        if not isinstance(outcome, OSError):  # else still ours in running/
            self.dispatch.release_slot(pub.active.token)
        self._schedule_retry(self.finishing.published(pub, outcome))

    def _fence(self, now: float) -> None:
        """Our lease lapsed (we were paused or cut off): others may own our jobs."""
        running = len(self.dispatch.active)
        self.dispatch.kill_all(Outcome.LOST)
        self.liveness.fence(now, running)

    def _rescan(self, now: float) -> None:
        self.next_rescan = now + self.config.settings.poll_seconds
        new = self.config_watch.poll()
        if new is not None:
            self._configure(new)
        self.intake.rescan()
        self.dispatch.control_changed()
        self.dispatch.sweep_shared(self.runner_id, time.time())

    def _configure(self, config: Config) -> None:
        self.config = config
        self.dispatch.config = config
        self.finishing.config = config
        self.maintenance.config = config
        self.scheduling.configure(config, time.time())
        self.retention.config = config
        self.liveness.configure(config)

    def _claim(self, now: float, wall: float) -> None:
        claimed, failed = self.dispatch.claim(wall, self.runner_id, self.intake.take)
        for entry in failed:
            self.intake.claim_failed(entry, wall)
        for entry, path in claimed:
            self.intake.claimed(entry)
            read = self.intake.read_claimed
            self._route(self.dispatch.start(entry, path, self.runner_id, read))

    def _route(self, result: Finish | Rejection | None) -> None:
        match result:
            case Finish(act, report):
                self._schedule_retry(self.finishing.finish(act, report))
            case Rejection(claim, path, job, error):
                self.finishing.reject(claim, path, job, error)

    def _finish(self, finished: list[Finish]) -> None:
        for item in finished:
            self._schedule_retry(self.finishing.finish(item.act, item.report))

    def _schedule_retry(self, record: Job | None) -> None:
        """A retry of ours, back in pending/: scheduled now rather than at an
        event or the next rescan (a burst would otherwise exit before it)."""
        if record is not None and record.id and not self.dispatch.has_job(record.id):
            self.intake.add_own_retry(record.id, record)

    # ------------------------------------------------------------ when to stop, when to wake

    def _stop_step(self, now: float) -> float | None:
        if now >= self.stop_deadline:
            self.dispatch.kill_all(Outcome.HANDED_BACK)
        if not self.dispatch.active and not self.finishing.busy():
            return None
        if now > self.stop_deadline + STOP_ABANDON_SECONDS:
            logs.event("stop_abandoned", logs.ERROR, running=len(self.dispatch.active))
            return None
        return min(0.1, max(0.0, self.stop_deadline - now)) if now < self.stop_deadline else 0.1

    def _idle(self, wall: float) -> bool:
        busy = self.dispatch.active or self.finishing.busy() or self.intake.waiting_on_claims()
        busy = busy or self.retention.active  # a pass begun is finished before a burst exits
        return not busy and not self._claimable(wall)

    def _next_wake(self, now: float, wall: float) -> float:
        times = [self.next_rescan, self.retention.next_run, *self.liveness.wake_times()]
        times += self.dispatch.deadlines()
        times += self.finishing.wake_times()
        times += self.intake.wake_times(now, wall)
        times.append(now + self.scheduling.wake_in(now, wall))
        if self.dispatch.free_slots() > 0 and self._claimable(wall):
            times.append(now)
        if self.dispatch.retry_in is not None:
            times.append(now + self.dispatch.retry_in)
        return max(0.0, min(times) - now)

    def _claimable(self, wall: float) -> bool:
        """Ready jobs that a claim pass did not leave behind for a rule
        (a pause, a cap): those wait for a change, not a busy loop."""
        return self.intake.has_ready(wall) and not self.dispatch.held_back
