"""The runner loop: wake on events, rescan, claim, reap, finish.

One thread owns all decisions. Other threads (the watchdog observer,
publishers) and signal handlers only put tuples in a
:class:`~runner.mailbox.Mailbox`; the fork server's messages are read by
the loop itself. :meth:`Runner.step` drains the mailbox and does everything
else. ``step`` takes ``now`` (monotonic) so
tests can drive the loop one step at a time.

Per step:
1. handle events: new pending files, control requests, attempt exits;
2. heartbeat; if our own heartbeat went stale (we were paused), fence:
   kill our attempts, publish nothing that was taken from us, re-register;
3. periodic rescan of pending/ and control/ (the correctness path), config
   hot reload, recovery of dead runners' jobs, tmp and duplicate cleanup;
4. kill attempts past their timeout, retry finishes that hit I/O errors;
5. claim the best due jobs while worker slots are free.

What happens to a job after an attempt is decided by ``retry.decide`` alone.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import secrets
import signal
import stat as stat_mod
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobspool import actions, control, leftovers, logs
from jobspool.attempts import (
    DESTINATION,
    Active,
    Report,
    from_child,
    log_finish,
    make_attempt,
    next_updates,
    read_report,
)
from jobspool.child import EXIT_FAILED, EXIT_OK, RunRequest
from jobspool.config import Config
from jobspool.configwatch import ConfigWatch
from jobspool.errors import Conflict, InvalidJobFile, NotAllowed
from jobspool.executor import create_time, kill_group, kill_tree, make_launcher
from jobspool.fsops import HardLinked, NotRegularFile, StrPath
from jobspool.heartbeats import BeatJob, Heartbeat
from jobspool.leases import Lease, Liveness, kill_orphans, take_over
from jobspool.mailbox import Mailbox
from jobspool.messages import (
    AttemptExited,
    AttemptReported,
    AttemptStarted,
    ChildReport,
    Event,
    FileChanged,
    LauncherGone,
    Published,
    RescanNeeded,
    StopRequested,
)
from jobspool.model import (
    Attempt,
    ErrorInfo,
    Job,
    Outcome,
    from_timestamp,
    is_valid_id,
    utcnow,
)
from jobspool.names import RunningName, hostname, is_job_name, new_id
from jobspool.progress import clear_progress, read_progress
from jobspool.publishers import Publishers
from jobspool.retry import Decision, decide
from jobspool.schedule import Entry, Schedule
from jobspool.spool import FileIdentity, Sealed, Spool
from jobspool.states import TERMINAL, Status

if TYPE_CHECKING:
    from jobspool.executor import Launcher

# A hand-written file may be caught half-written; give its writer this long
# before calling it corrupt.
YOUNG_FILE_SECONDS = 2.0
TMP_MAX_AGE = 3600.0
MAINTENANCE_SECONDS = 60.0
PUBLISHERS = 4
# How many loaded pending jobs are kept for their claim (a few MB at most).
LOADED_MAX = 4096
CLAIM_RETRY_SECONDS = 0.5
RECHECK_FIRST = 0.002
RECHECK_MAX = 0.5
FINISH_RETRY_MAX = 30.0


@dataclass
class Publication:
    """A decided finish on its way to disk (on a publisher thread)."""

    active: Active
    report: Report
    attempt: Attempt
    decision: Decision
    backoff: float
    sealed: Sealed | None = None  # None: the record could not be encoded

    @property
    def record(self) -> Job:
        """The record being published (before sealing: the job as claimed)."""
        return self.sealed.job if self.sealed is not None else self.active.job


@dataclass
class Unfinished:
    """A finish that failed on I/O (disk full, EIO): the job stays in running/."""

    active: Active
    report: Report
    retry_at: float
    backoff: float


def attempt_seen(beat: Heartbeat | None, claim: RunningName) -> tuple[int | None, datetime]:
    """What a dead runner's last heartbeat said about one of its attempts:
    its pid and start (unknown: no pid, started now)."""
    job = beat.attempt(claim.job_id, claim.attempt) if beat is not None else None
    return (job.pid, job.started_at) if job is not None else (None, utcnow())


def new_runner_id() -> str:
    return f"{hostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Runner:
    def __init__(
        self,
        config: Config,
        *,
        burst: bool = False,
        watch: bool = True,
        overrides: dict[str, Any] | None = None,
        console: bool = False,
    ) -> None:
        self.config = config
        self.overrides = overrides or {}
        self.burst = burst
        self.watch = watch
        self.console = console
        s = config.settings
        self.spool = Spool(
            config.spool_dir,
            durable=s.durable,
            max_job_bytes=s.max_job_bytes,
            log_dir=config.log_dir,
        )
        self.events = Mailbox()
        self.schedule = Schedule()
        self.active: dict[str, Active] = {}
        self.per_job: Counter[str] = Counter()
        self.unfinished: list[Unfinished] = []
        self.inflight: dict[str, Publication] = {}
        # Slot freed, attempt not recorded yet: (attempt, exit code, report
        # if it came on the fork server's pipe, else None: read its file).
        self.exited: list[tuple[Active, int, ChildReport | None]] = []
        # Jobs as loaded from pending/, so a claim need not read them again.
        self.loaded: dict[str, tuple[FileIdentity, Job]] = {}
        # fsync-bound publishing runs here so the loop keeps claiming meanwhile.
        self.pool: Publishers[Publication] | None = None
        self.runner_id = new_runner_id()
        self.lease = Lease(self.spool, self.runner_id)
        self.liveness = Liveness(self.spool, self.runner_id, s.lease_seconds)
        self.launcher: Launcher | None = None
        self.stopping = False
        self.stop_deadline = 0.0
        self.control_dirty = True
        self.cancel_requests: dict[str, dict[str, Any]] = {}
        self.rechecks: dict[str, tuple[float, float]] = {}
        self.claim_retries: set[str] = set()
        self.last_beat = 0.0
        self.next_beat = 0.0
        self.next_rescan = 0.0
        self.next_check = 0.0
        self.next_maintenance = 0.0
        self.config_watch = ConfigWatch(config, self.overrides)
        self.rng = random.Random()

    # ------------------------------------------------------------ lifecycle

    @property
    def settings(self) -> Any:
        return self.config.settings

    def run(self) -> int:
        """Run until stopped (or, with burst, until nothing is due or running)."""
        # What exists now (modules, classes, pydantic's schemas) lives as
        # long as the process: full collections need not walk it again.
        gc.freeze()
        logs.setup(
            self.config.log_dir,
            max_bytes=self.settings.logs.max_bytes,
            backups=self.settings.logs.backups,
            console=self.console,
        )
        self.events.own()
        self.launcher = make_launcher(self.settings.start_method, self.events.put)
        self.pool = Publishers(PUBLISHERS, self._publish_safely, self.events.put)
        self._install_signals()
        watcher = None
        try:
            self.lease.acquire()
            self.last_beat = time.monotonic()
            logs.event("runner_started", runner=self.runner_id, spool=self.spool.root)
            if self.watch:
                from jobspool.watcher import Watcher

                watcher = Watcher(self.spool.root, self.events.put)
                watcher.start()
            self._maintenance(time.monotonic())  # leftovers first, once
            # The first scan overlaps the fork server's start-up.
            self._rescan(time.monotonic())
            self.launcher.wait_ready()
            while True:
                wait = self.step(time.monotonic())
                if wait is None:
                    break
                self._wait(wait)
        finally:
            if watcher is not None:
                watcher.stop()
            self.pool.shutdown()
            self.pool = None
            self.launcher.close()
            self.events.close()
            self.lease.release()
            logs.event("runner_stopped", runner=self.runner_id)
            logs.close()
        return 0

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
            logs.event("runner_stopping", runner=self.runner_id, running=len(self.active))
        self.stopping = True
        self.stop_deadline = now if immediate else now + self.settings.grace_seconds

    def _wait(self, timeout: float) -> None:
        """Sleep until an event arrives; step() handles it (after its lease check)."""
        fd = self.launcher.fd if self.launcher is not None else None
        self.events.wait(timeout, fd)

    # ------------------------------------------------------------ the step

    def step(self, now: float) -> float | None:
        """Do all due work; return seconds until the next wake, or None to exit."""
        # First of all: were we paused past our lease? Then others may own our
        # jobs, and no event may be acted on before we have fenced ourselves.
        if now - self.last_beat > self.settings.lease_seconds:
            self._fence(now)
        self._drain(now)
        if self.rechecks:
            self._run_rechecks(now)
        wall = time.time()
        if now >= self.next_beat:
            self._heartbeat(now)
        if now >= self.next_rescan:
            self._rescan(now)
        if self.control_dirty:
            self._check_control(now)
        if now >= self.next_check:
            self._check_runners(now)
        if now >= self.next_maintenance:
            self._maintenance(now)
        self._enforce_timeouts(now)
        self._retry_unfinished(now)
        if self.stopping:
            self._finish_exited()
            return self._stop_step(now)
        # Refill the freed slots before recording the attempts that freed
        # them: the next attempts start that much sooner.
        self._claim_ready(now, wall)
        self._finish_exited()
        if self.burst and self._idle(wall):
            return None
        return self._next_wake(now, wall)

    def _drain(self, now: float) -> None:
        if self.launcher is not None:
            self.launcher.pump()
        while (item := self.events.get_nowait()) is not None:
            self._handle(item, now)

    def _handle(self, msg: Event, now: float) -> None:
        match msg:
            case FileChanged(path):
                folder, name = os.path.split(path)
                if os.path.basename(folder) == "control":
                    self.control_dirty = True
                elif is_job_name(name) and name not in self.schedule:
                    self._load_pending(name)
            case AttemptStarted(token, pid):
                self._started(token, pid)
            case AttemptReported(token, pid, report):
                self._reported(token, pid, report)
            case AttemptExited(token, code):
                self._exited(token, code)
            case Published(pub, outcome):
                self._published(pub, outcome)
            case RescanNeeded():
                self.next_rescan = 0.0
            case StopRequested():
                self.request_stop(now)
            case LauncherGone():
                if not self.stopping:
                    self._launcher_gone()

    def _stop_step(self, now: float) -> float | None:
        if now >= self.stop_deadline:
            for act in self.active.values():
                if act.stop is None:
                    self._kill(act, Outcome.HANDED_BACK)
        if not self.active and not self.unfinished and not self.inflight:
            return None
        if now > self.stop_deadline + 30:  # attempts that never report: give up
            logs.event("stop_abandoned", logs.ERROR, running=len(self.active))
            return None
        return min(0.1, max(0.0, self.stop_deadline - now)) if now < self.stop_deadline else 0.1

    def _idle(self, wall: float) -> bool:
        # A job whose claim hit an I/O error is due, just not claimable yet.
        if self.claim_retries:
            self.claim_retries = {n for n in self.claim_retries if n in self.schedule}
        busy = self.active or self.unfinished or self.inflight or self.claim_retries
        return not busy and not self.schedule.has_ready(wall)

    def _next_wake(self, now: float, wall: float) -> float:
        times = [self.next_beat, self.next_rescan, self.next_check]
        times += [a.deadline for a in self.active.values()]
        times += [u.retry_at for u in self.unfinished]
        times += [due for due, _delay in self.rechecks.values()]
        due = self.schedule.next_due()
        if due is not None:
            times.append(now + (due - wall))
        if len(self.active) < self.settings.workers and self.schedule.has_ready(wall):
            times.append(now)
        return max(0.0, min(times) - now)

    # ------------------------------------------------------------ pending

    def _job_id_for(self, name: str, job: Job) -> str:
        stem = name[: -len(".json")]
        if not is_valid_id(stem):
            return new_id()
        if job.revision == 0:  # hand-dropped: its name may repeat an old job's id
            where = self.spool.locate(stem)
            if where is not None and where[0] is not Status.PENDING:
                return new_id()
        return stem

    def _load_pending(self, name: str) -> None:
        path = self.spool.path_in(Status.PENDING, name)
        try:
            job, seen = self.spool.read_job_stat(path, single_link=True)
        except FileNotFoundError:
            self.schedule.discard(name)
            return
        except HardLinked as exc:
            twin = leftovers.tmp_twin(self.spool, path, YOUNG_FILE_SECONDS)
            if twin == "removed":  # its writer died before removing its tmp name
                self._load_pending(name)
            elif twin == "young":  # a publish in flight: its tmp name goes in a moment
                self._recheck_soon(name)
            else:
                self._not_a_job(name, path, str(exc))
            return
        except (InvalidJobFile, NotRegularFile) as exc:
            self._not_a_job(name, path, str(exc))
            return
        except OSError as exc:
            logs.event("read_error", logs.ERROR, file=name, error=exc)
            return
        self._remember(name, seen, job)
        if job.created_at is None:  # hand-written: its age is the file's
            with contextlib.suppress(OSError):
                job = job.model_copy(update={"created_at": from_timestamp(os.stat(path).st_mtime)})
        self.schedule.add(name, self._job_id_for(name, job), job)

    def _remember(self, name: str, seen: FileIdentity, job: Job) -> None:
        """Keep a loaded job for its claim; bounded, oldest dropped first."""
        self.loaded.pop(name, None)
        self.loaded[name] = (seen, job)
        while len(self.loaded) > LOADED_MAX:
            del self.loaded[next(iter(self.loaded))]

    def _read_claimed(self, name: str, path: str) -> Job:
        """The claimed job: as loaded if the claimed file is that very file."""
        known = self.loaded.pop(name, None)
        if known is not None and self.spool.same_file(path, known[0]):
            return known[1]
        return self.spool.read_job(path, single_link=True)

    def _recheck_soon(self, name: str) -> None:
        """Look at a pending file again shortly (2 ms, doubling up to 0.5 s)."""
        _due, delay = self.rechecks.get(name, (0.0, RECHECK_FIRST / 2))
        delay = min(delay * 2, RECHECK_MAX)
        self.rechecks[name] = (time.monotonic() + delay, delay)

    def _run_rechecks(self, now: float) -> None:
        for name, (due, _delay) in list(self.rechecks.items()):
            if due <= now:
                del self.rechecks[name]
                if name not in self.schedule:
                    self._load_pending(name)

    def _not_a_job(self, name: str, path: StrPath, reason: str, *, force: bool = False) -> None:
        """Quarantine a file that is not a job; a young regular file gets time."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        young = time.time() - st.st_mtime < YOUNG_FILE_SECONDS
        if stat_mod.S_ISREG(st.st_mode) and young and not force:
            return  # its writer may not be done: the next rescan looks again
        try:
            dst = self.spool.quarantine(path, reason)
        except FileNotFoundError:
            return
        except OSError as exc:
            logs.event("quarantine_error", logs.ERROR, file=name, error=exc)
            return
        logs.event("corrupt", logs.ERROR, file=name, moved_to=dst.name, reason=reason)

    def _rescan(self, now: float) -> None:
        self.next_rescan = now + self.settings.poll_seconds
        self._reload_config()
        present = set(self.spool.names(Status.PENDING))
        for name in self.schedule.names() - present:
            self.schedule.discard(name)
        for name in sorted(present - self.schedule.names()):
            self._load_pending(name)
        self.control_dirty = True

    # ------------------------------------------------------------ claiming

    def _claim_ready(self, now: float, wall: float) -> None:
        """Claim what fits, make the claims durable with one sync, then start them."""
        batch: Counter[str] = Counter()

        def fits(entry: Entry) -> bool:
            spec = self.settings.allowed_jobs.get(entry.job)
            cap = spec.concurrency if spec else None
            return cap is None or self.per_job[entry.job] + batch[entry.job] < cap

        claimed: list[tuple[Entry, str]] = []
        while len(self.active) + len(claimed) < self.settings.workers:
            entry = self.schedule.take(wall, fits)
            if entry is None:
                break
            claim = RunningName(entry.job_id, self.runner_id, entry.attempt)
            try:
                path = self.spool.claim(entry.name, claim)
            except OSError as exc:  # still in pending/: try it again a little later
                logs.event("claim_error", logs.ERROR, job=entry.job_id, error=exc)
                self.schedule.defer(entry, wall + CLAIM_RETRY_SECONDS)
                self.claim_retries.add(entry.name)
                continue
            self.claim_retries.discard(entry.name)
            if path is not None:  # else another runner (or a person) took it first
                claimed.append((entry, path))
                batch[entry.job] += 1
        if claimed:
            self.spool.sync_claims()
        for entry, path in claimed:
            self._start_claimed(entry, path, now)

    def _start_claimed(self, entry: Entry, path: str, now: float) -> None:
        claim = RunningName(entry.job_id, self.runner_id, entry.attempt)
        try:
            job = self._read_claimed(entry.name, path)
        except (InvalidJobFile, NotRegularFile) as exc:
            self._not_a_job(entry.name, path, f"changed after it was queued: {exc}", force=True)
            return
        except OSError as exc:  # EIO and the like: give it back untouched
            logs.event("read_error", logs.ERROR, job=entry.job_id, error=exc)
            with contextlib.suppress(OSError):
                self.spool.ops.rename(path, self.spool.path_in(Status.PENDING, entry.name))
            return
        job = self._complete_record(job, entry, path)
        try:
            self.config.spec(job.job, job.method)
        except NotAllowed as exc:
            self._reject(claim, path, job, exc)
            return
        if entry.job_id in self.cancel_requests:
            act = Active(entry.name, claim, path, job, None, utcnow(), now, stop=Outcome.CANCELLED)
            act.stop_info = self.cancel_requests[entry.job_id]
            self._finish(act, Report(Outcome.CANCELLED))
            return
        self._launch(claim, path, job, now)

    def _complete_record(self, job: Job, entry: Entry, path: StrPath) -> Job:
        updates: dict[str, Any] = {} if job.id == entry.job_id else {"id": entry.job_id}
        if job.created_at is None:
            with contextlib.suppress(OSError):
                updates["created_at"] = from_timestamp(os.stat(path).st_mtime)
        if entry.name[: -len(".json")] != entry.job_id:
            # A name that is not UTF-8 must still be storable in the record.
            readable = os.fsencode(entry.name).decode("utf-8", "backslashreplace")
            updates["original_name"] = job.original_name or readable
        return job.model_copy(update=updates) if updates else job

    def _reject(self, claim: RunningName, path: StrPath, job: Job, exc: Exception) -> None:
        updates = {
            "reason": f"rejected: {exc}",
            "error": ErrorInfo(type=type(exc).__name__, message=str(exc)),
        }
        try:
            self._publish(path, Status.FAILED, self.spool.seal(job, updates))
        except OSError as io_error:
            logs.event("finish_error", logs.ERROR, job=job.id, to="failed", error=io_error)
            return
        logs.event("rejected", logs.ERROR, job=job.id, name=f"{job.job}.{job.method}", reason=exc)

    def _launch(self, claim: RunningName, path: StrPath, job: Job, now: float) -> None:
        token = claim.filename[: -len(".json")]
        job_id = job.id or ""
        spec = self.config.spec(job.job, job.method)
        timeout = job.timeout_seconds or self.config.timeout(job.job)
        req = RunRequest(
            token=token,
            job_id=job_id,
            job=job.job,
            method=job.method,
            params=job.params,
            class_path=spec.class_path or f"jobs.{job.job}",
            attempt=claim.attempt,
            max_attempts=job.max_attempts or self.config.retry_policy(job.job).max_attempts,
            base_dir=str(self.config.base_dir),
            spool=self.spool.root_str,
            log_dir=self.spool.log_dir_str,
            log_path=self.spool.job_log_file(job_id),
            report_path=self._report_path(token),
        )
        act = Active(token, claim, path, job, None, utcnow(), now + timeout)
        assert self.launcher is not None
        try:
            self.launcher.start(req)
        except (OSError, RuntimeError) as exc:
            logs.event("launch_error", logs.ERROR, job=job_id, error=exc)
            self._finish(act, Report(Outcome.HANDED_BACK))
            return
        self.active[token] = act
        self.per_job[job.job] += 1

    def _started(self, token: str, pid: int) -> None:
        act = self.active.get(token)
        if act is None:
            return
        act.pid = pid
        if act.stop is not None:  # cancelled or timed out before its pid was known
            kill_tree(pid)
        job = act.job
        logs.event(
            "started",
            job=job.id,
            name=f"{job.job}.{job.method}",
            attempt=act.claim.attempt,
            pid=pid,
            runner=self.runner_id,
        )

    def _report_path(self, token: str) -> str:
        return self.spool.path_in("tmp", f"{token}.report.json")

    # ------------------------------------------------------------ finishing

    def _exited(self, token: str, code: int) -> None:
        act = self.active.pop(token, None)
        if act is not None:
            self._ended(act, code, None)

    def _ended(self, act: Active, code: int, data: ChildReport | None) -> None:
        """Free the attempt's slot now; its record is written after the refill."""
        self.per_job[act.job.job] -= 1
        act.exited_at = utcnow()
        self.exited.append((act, code, data))

    def _reported(self, token: str, pid: int, report: ChildReport) -> None:
        """The attempt sent its report: it is over, though its process may
        still be exiting (the fork server reaps it and kills its group).
        A report wins over a kill we ordered, as in read_report."""
        act = self.active.get(token)
        if act is None:
            return
        if act.pid is None:  # its "started" line may come after the report
            self._started(token, pid)
        del self.active[token]
        code = EXIT_OK if report.outcome == Outcome.SUCCEEDED else EXIT_FAILED
        self._ended(act, code, report)

    def _finish_exited(self) -> None:
        while self.exited:
            act, code, data = self.exited.pop(0)
            if data is not None:
                self._finish(act, from_child(data, code))
                continue
            if act.pid is not None:
                kill_group(act.pid)
            timeout = act.job.timeout_seconds or self.config.timeout(act.job.job)
            self._finish(act, read_report(self._report_path(act.token), act, code, timeout))

    def _finish(self, act: Active, report: Report, backoff: float = 0.5) -> None:
        """Record the attempt, decide, publish; on I/O errors keep it and retry later."""
        job = act.job
        attempt = make_attempt(act, report, act.host or self.lease.host)
        decision = self._decide(job, attempt, report)
        # A report that says no progress was written spares a look for it.
        wrote = report.progress is not False
        progress = read_progress(self.spool, job.id or "") if wrote else None
        updates = next_updates(job, attempt, decision, report=report, act=act, progress=progress)
        pub = Publication(act, report, attempt, decision, backoff)
        try:
            pub.sealed = self.spool.seal(job, updates)
        except Exception as exc:  # e.g. a result over the size cap
            self._published(pub, exc)
            return
        if self.pool is None:
            self._published(pub, self._publish_safely(pub))
            return
        self.inflight[act.token] = pub
        self.pool.submit(pub)

    def _publish_safely(self, pub: Publication) -> bool | Exception:
        """Runs on a publisher thread: only file I/O, no decisions, never raises."""
        try:
            assert pub.sealed is not None
            return self._publish(pub.active.path, DESTINATION[pub.decision.action], pub.sealed)
        except Exception as exc:  # reported back to the loop, which decides
            return exc

    def _published(self, pub: Publication, outcome: bool | Exception) -> None:
        self.inflight.pop(pub.active.token, None)
        if isinstance(outcome, Exception) and not isinstance(outcome, OSError):
            # The record itself cannot be written: keep the claim, byte for byte.
            logs.event("finish_error", logs.ERROR, job=pub.record.id, error=outcome)
            with contextlib.suppress(OSError):
                self.spool.quarantine(pub.active.path, f"cannot publish: {outcome}")
            return
        if isinstance(outcome, OSError):
            # Disk full, EIO...: the job stays in running/ (we still own it)
            # and the finish is tried again with growing backoff, no hot loop.
            logs.event(
                "finish_error",
                logs.ERROR,
                job=pub.record.id,
                to=DESTINATION[pub.decision.action],
                error=outcome,
                retry_in=f"{pub.backoff:g}s",
            )
            retry_at = time.monotonic() + pub.backoff
            self.unfinished.append(Unfinished(pub.active, pub.report, retry_at, pub.backoff))
        elif outcome:
            log_finish(pub.record, pub.attempt, pub.decision)
            job_id = pub.record.id
            if DESTINATION[pub.decision.action] is Status.PENDING and job_id:
                self._schedule_own_retry(job_id, pub.record)

    def _schedule_own_retry(self, job_id: str, record: Job) -> None:
        """Schedule our own retry now rather than wait for an event or the next
        rescan (a burst would otherwise exit before it), unless the watcher's
        event got there first."""
        name = f"{job_id}.json"
        claimed = any(a.job.id == job_id for a in self.active.values())
        if name not in self.schedule and not claimed:
            self.schedule.add(name, job_id, record)

    def _decide(self, job: Job, attempt: Attempt, report: Report) -> Decision:
        counted = attempt.outcome is not Outcome.HANDED_BACK  # as in Job.attempts_used
        return decide(
            report.outcome,
            policy=self.config.retry_policy(job.job),
            attempts_used=job.attempts_used + counted,
            max_attempts=job.max_attempts,
            now=utcnow(),
            rand=self.rng.random(),
            error_types=report.error_types,
            requested_delay=report.delay,
        )

    def _publish(self, path: StrPath, dst: Status, sealed: Sealed) -> bool:
        """Move our running file on; False if fenced. OSError propagates."""
        record = sealed.job
        job_id = record.id or ""
        try:
            self.spool.finish(path, dst, sealed)
        except Conflict as exc:
            logs.event("fenced", logs.WARNING, job=job_id, reason=exc)
            return False
        if record.progress is not None:  # now kept in the record itself
            clear_progress(self.spool, job_id)
        if dst is Status.CANCELLED:
            control.clear_request(self.spool, "cancel", job_id)
        return True

    def _retry_unfinished(self, now: float) -> None:
        due = [u for u in self.unfinished if u.retry_at <= now]
        for item in due:
            self.unfinished.remove(item)
            self._finish(item.active, item.report, backoff=min(FINISH_RETRY_MAX, item.backoff * 2))

    # ------------------------------------------------------------ control

    def _kill(self, act: Active, why: Outcome, info: dict[str, Any] | None = None) -> None:
        act.stop = why
        act.stop_info = info or {}
        if act.pid is not None:
            kill_tree(act.pid)

    def _enforce_timeouts(self, now: float) -> None:
        for act in list(self.active.values()):
            if act.stop is None and now >= act.deadline:
                self._kill(act, Outcome.TIMED_OUT)

    def _check_control(self, now: float) -> None:
        self.control_dirty = False
        requests = self.cancel_requests = control.requests(self.spool, "cancel")
        if not requests:
            return
        by_id = {a.job.id: a for a in self.active.values()}
        for job_id, info in requests.items():
            act = by_id.get(job_id)
            if act is not None:
                if act.stop is None:
                    self._kill(act, Outcome.CANCELLED, info)
                continue
            where = self.spool.locate(job_id)
            if where is None or where[0] in TERMINAL:
                control.clear_request(self.spool, "cancel", job_id)
            elif where[0] is Status.PENDING:
                with contextlib.suppress(Conflict):
                    actions.cancel(self.spool, job_id, by=info.get("by"), via=info.get("via"))
                    control.clear_request(self.spool, "cancel", job_id)

    # ------------------------------------------------------------ liveness

    def _heartbeat(self, now: float) -> None:
        self.next_beat = now + self.settings.heartbeat_seconds
        cap = self.settings.logs.job_log_max_bytes
        for act in self.active.values():
            if act.pid is not None and act.pid_created is None:
                act.pid_created = create_time(act.pid)
            if logs.cap_file(self.spool.job_log_file(act.job.id or ""), cap):
                logs.event("log_capped", logs.WARNING, job=act.job.id, max_bytes=cap)
        jobs = [
            BeatJob(
                id=a.claim.job_id,
                attempt=a.claim.attempt,
                pid=a.pid,
                pid_created=a.pid_created,
                started_at=a.started_at,
                name=f"{a.job.job}.{a.job.method}",
            )
            for a in self.active.values()
        ]
        try:
            self.lease.beat(jobs)
        except OSError as exc:
            logs.event("heartbeat_error", logs.ERROR, runner=self.runner_id, error=exc)
            return
        self.last_beat = now

    def _fence(self, now: float) -> None:
        """Our lease lapsed (we were paused or cut off): others may own our jobs."""
        logs.event("lease_lost", logs.ERROR, runner=self.runner_id, running=len(self.active))
        for act in self.active.values():
            if act.stop is None:
                self._kill(act, Outcome.LOST)
        old = self.runner_id
        self.lease.release()
        self.runner_id = new_runner_id()
        self.lease = Lease(self.spool, self.runner_id)
        self.liveness = Liveness(self.spool, self.runner_id, self.settings.lease_seconds)
        self.last_beat = now  # retried no sooner than one lease from now
        try:
            self.lease.acquire()
        except OSError as exc:
            logs.event("register_error", logs.ERROR, runner=self.runner_id, error=exc)
            return
        logs.event("runner_reregistered", old=old, runner=self.runner_id)

    def _check_runners(self, now: float) -> None:
        self.next_check = now + self.settings.heartbeat_seconds
        owners = {claim.runner for claim, _ in self.spool.running_entries()}
        for runner, beat in self.liveness.dead(now, owners).items():
            killed = kill_orphans(beat)
            for claim, path in take_over(self.spool, runner, self.runner_id):
                self._recover(claim, path, killed, beat)
            self.liveness.forget(runner)

    def _recover(
        self, claim: RunningName, path: StrPath, killed: list[int], beat: Heartbeat | None
    ) -> None:
        try:
            job = self.spool.read_job(path)
        except (InvalidJobFile, NotRegularFile, OSError) as exc:
            self._not_a_job(
                os.path.basename(path), path, f"unreadable running file: {exc}", force=True
            )
            return
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
        self._finish(act, Report(Outcome.LOST, error=error))

    def _maintenance(self, now: float) -> None:
        self.next_maintenance = now + MAINTENANCE_SECONDS
        for note in leftovers.resolve_duplicates(self.spool, self.settings.lease_seconds):
            logs.event("duplicate_resolved", logs.WARNING, note=note)
        for name in leftovers.clean_tmp(self.spool, TMP_MAX_AGE):
            logs.event("tmp_removed", file=name)
        self._quarantine_strays(time.time() - self.settings.lease_seconds)

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

    def _launcher_gone(self) -> None:
        logs.event("launcher_died", logs.ERROR, running=len(self.active))
        for act in list(self.active.values()):
            if act.pid is not None:
                kill_tree(act.pid)
            self._exited(act.token, -signal.SIGKILL)
        if self.launcher is not None:
            with contextlib.suppress(Exception):
                self.launcher.close()
        self.launcher = make_launcher(self.settings.start_method, self.events.put)

    # ------------------------------------------------------------ config

    def _reload_config(self) -> None:
        new = self.config_watch.poll()
        if new is not None:
            self.config = new
            self.liveness.lease = new.settings.lease_seconds
