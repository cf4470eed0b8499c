"""Dispatch: claim due jobs within the caps, start their attempts, follow them.

Owns the attempts this runner has in flight (:class:`~jobspool.attempts.Active`,
by token), the launcher that starts them (the fork server, or a spawner),
the per-job concurrency counts, timeouts, cancel requests and the pauses
it obeys (read from control/ with the cancel requests). It claims by
rename (invariant 3) under a name that carries this runner's id and the
attempt number (invariant 4), makes a batch of claims durable with one sync,
validates each claimed record against the allow-list before anything is
imported (invariant 5), and turns what the launcher says (started, reported,
exited) into finished attempts for the finishing stage.

Invariants: an attempt's slot is freed as soon as its report or exit is
known, before its record is written; every kill this stage orders names its
reason first (``Active.stop``), so the finish records why; it never
publishes a job itself: everything that ends leaves as a :class:`Finish` or
:class:`Rejection` value for the loop to route. A paused name is never
claimed (``claimgate``); a name with a global cap is claimed only with a
slot taken first (:mod:`jobspool.slots`), given back when the attempt's
record is published, when the claim is lost, or at the next sweep when no
claim of ours in running/ carries its token; a name with a rate only with a
token of the current window (:mod:`jobspool.rates`), taken after the slot
(the order is :mod:`jobspool.stages.admission`'s). When the last claim pass left
ready jobs behind that nothing but such a rule holds, :attr:`held_back`
says so, and the loop waits for a change (or :attr:`retry_in`, for what
other runners free) rather than trying again at once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobspool import actions, claimgate, control, logs, provenance, rates, slots, tokens, unique
from jobspool.attempts import Active, Report, from_child, read_report
from jobspool.child import EXIT_FAILED, EXIT_OK, RunRequest
from jobspool.config import Config
from jobspool.errors import Conflict, InvalidJobFile, JobNotFound, NotAllowed
from jobspool.executor import create_time, kill_tree, make_launcher
from jobspool.fsops import NotRegularFile, StrPath
from jobspool.heartbeats import BeatJob
from jobspool.messages import ChildReport, Event
from jobspool.model import Job, Outcome, from_timestamp, within
from jobspool.names import FINISHING, RunningName
from jobspool.schedule import Entry
from jobspool.spool import Spool
from jobspool.stages import Finish, Rejection
from jobspool.stages.admission import Admission, attempt_token
from jobspool.stages.intake import quarantine
from jobspool.states import TERMINAL, Status

if TYPE_CHECKING:
    from jobspool.executor import Launcher

Take = Callable[[float, Callable[[Entry], bool]], Entry | None]
ReadClaimed = Callable[[str, str], Job]
# Makes the launcher from the configured start method and the mailbox's put.
MakeLauncher = Callable[[str, Callable[[Event], None]], "Launcher"]


class Dispatch:
    def __init__(self, spool: Spool, config: Config, launcher: MakeLauncher | None = None) -> None:
        self.spool = spool
        self.config = config
        self._make_launcher = launcher or make_launcher
        self.active: dict[str, Active] = {}
        self._per_job: Counter[str] = Counter()
        # Slot freed, attempt not recorded yet: (attempt, exit code, report
        # if it came on the fork server's pipe, else None: read its file).
        self._exited: list[tuple[Active, int, ChildReport | None]] = []
        self._launcher: Launcher | None = None
        self._post: Callable[[Event], None] | None = None
        self.cancel_requests: dict[str, dict[str, Any]] = {}
        self.control = control.Reader(spool)
        self.control_dirty = True
        self.paused: frozenset[str] = frozenset()  # job names, claimgate.ALL for the spool
        self.held_back = False  # ready jobs were left unclaimed by a rule
        self.retry_in: float | None = None  # seconds: a shared limit may free by then
        self.slots_held: dict[str, tokens.Taken] = {}  # by attempt token
        self._slot_trouble: set[str] = set()  # names whose slots failed, said once
        self._now, self._wall = 0.0, 0.0  # the loop's step instant (see tick)

    def tick(self, now: float, wall: float) -> None:
        """The step's instant on the loop's two clocks: attempts start and are
        seen to end at step instants, so a recorded start is never after the
        instant its deadline counts from, and the next attempt in a slot never
        starts before the last one ended."""
        self._now, self._wall = now, wall

    # ------------------------------------------------------------ launcher

    def open(self, post: Callable[[Event], None]) -> None:
        self._post = post
        self._launcher = self._make_launcher(self.config.settings.start_method, post)

    def wait_ready(self) -> None:
        assert self._launcher is not None
        self._launcher.wait_ready()

    def close(self) -> None:
        if self._launcher is not None:
            self._launcher.close()

    @property
    def fd(self) -> int | None:
        return self._launcher.fd if self._launcher is not None else None

    def pump(self) -> None:
        if self._launcher is not None:
            self._launcher.pump()

    def launcher_gone(self) -> None:
        logs.event("launcher_died", logs.ERROR, running=len(self.active))
        for act in list(self.active.values()):
            if act.pid is not None:
                _kill_orphaned(act)
            self.exited(act.token, -signal.SIGKILL)
        if self._launcher is not None:
            with contextlib.suppress(Exception):
                self._launcher.close()
        assert self._post is not None
        self._launcher = self._make_launcher(self.config.settings.start_method, self._post)

    # ------------------------------------------------------------ claiming

    def free_slots(self) -> int:
        return self.config.settings.workers - len(self.active)

    def claim(
        self, wall: float, runner_id: str, take: Take
    ) -> tuple[list[tuple[Entry, str]], list[Entry]]:
        """Claim what fits, make the claims durable with one sync.

        Returns the claims (entry, running path) and the entries whose claim
        failed on I/O (still in pending/, to be tried again a little later).
        """
        admit = Admission(
            self.spool,
            self.config,
            paused=self.paused,
            running=self._per_job,
            runner_id=runner_id,
            wall=wall,
            trouble=self._slot_trouble,
        )
        claimed: list[tuple[Entry, str]] = []
        failed: list[Entry] = []
        self.held_back = False
        while len(claimed) < self.free_slots():
            entry = take(wall, admit.fits)
            if entry is None:
                self.held_back = admit.refused
                break
            claim = RunningName(entry.job_id, runner_id, entry.attempt)
            slot, token = admit.holdings(entry)
            try:
                path = self.spool.claim(entry.name, claim)
            except OSError as exc:
                logs.event("claim_error", logs.ERROR, job=entry.job_id, error=exc)
                failed.append(entry)
                path = None
            if path is None:  # another runner (or a person) took it first, or I/O
                admit.give_back(slot)
                admit.give_back(token)
                continue
            claimed.append((entry, path))
            admit.batch[entry.job] += 1
            if slot is not None:
                self.slots_held[attempt_token(claim)] = slot
        self.retry_in = admit.retry_in
        if claimed:
            self.spool.sync_claims()
        return claimed, failed

    def _give_back(self, slot: tokens.Taken | None) -> None:
        if slot is None:
            return
        try:
            tokens.give_back(self.spool, slot)
        except OSError as exc:  # the holder's next sweep tries again
            logs.event("slot_error", logs.ERROR, slot=slot.path, error=exc)

    def release_slot(self, token: str) -> None:
        """The attempt's record is published (or the claim is gone): its slot is free."""
        self._give_back(self.slots_held.pop(token, None))

    def sweep_shared(self, runner_id: str, wall: float) -> None:
        """Give back our slots that no claim of ours in running/ carries any more;
        report (and move to corrupt/) what in slots/ is not a slot; remove
        rate windows long past."""
        for name, spec in self.config.settings.allowed_jobs.items():
            if spec.rate is not None:
                rates.prune(self.spool, name, spec.rate, wall)
        found = slots.scan(self.spool)
        for path, reason in found.refused.items():
            with contextlib.suppress(OSError):
                dst = self.spool.quarantine(path, f"not a slot: {reason}")
                logs.event("slot_refused", logs.WARNING, file=path, reason=reason, moved_to=dst)
        ours = set()
        for claim, _path in self.spool.running_entries():
            if claim.runner.removesuffix(FINISHING) == runner_id:
                ours.add(attempt_token(RunningName(claim.job_id, runner_id, claim.attempt)))
        for stale in slots.stale_of(found, runner_id, ours):
            self.slots_held.pop(stale.holder.token, None)
            with contextlib.suppress(OSError):
                if tokens.remove_if(self.spool, stale.path, stale.ino, stale.holder):
                    logs.event("slot_repaired", slot=stale.path, job=stale.holder.job)

    def start(
        self, entry: Entry, path: str, runner_id: str, read: ReadClaimed
    ) -> Finish | Rejection | None:
        """Validate a claimed job and launch its attempt, or say how it ends."""
        claim = RunningName(entry.job_id, runner_id, entry.attempt)
        try:
            job = read(entry.name, path)
        except (InvalidJobFile, NotRegularFile) as exc:
            reason = f"changed after it was queued: {exc}"
            quarantine(self.spool, entry.name, path, reason, force=True)
            return None
        except OSError as exc:  # EIO and the like: give it back untouched
            logs.event("read_error", logs.ERROR, job=entry.job_id, error=exc)
            with contextlib.suppress(OSError):
                self.spool.ops.rename(path, self.spool.path_in(Status.PENDING, entry.name))
            return None
        job = _complete_record(job, entry, path)
        unique.release(self.spool, job, Status.RUNNING)  # the end of until=queued
        try:
            self.config.spec(job.job, job.method)
        except NotAllowed as exc:
            return Rejection(claim, path, job, exc)
        if entry.job_id in self.cancel_requests:
            started = from_timestamp(self._wall)
            act = Active(entry.name, claim, path, job, None, started, self._now)
            act.stop, act.begun = Outcome.CANCELLED, self._now
            act.stop_info = self.cancel_requests[entry.job_id]
            return Finish(act, Report(Outcome.CANCELLED))
        return self._launch(claim, path, job)

    def _launch(self, claim: RunningName, path: StrPath, job: Job) -> Finish | None:
        token = claim.filename[: -len(".json")]
        job_id = job.id or ""
        spec = self.config.spec(job.job, job.method)
        timeout = within(job.timeout_seconds, self.config.timeout(job.job))
        assert self._launcher is not None
        # Limits need a process per attempt: config.pooled says no for them.
        pooled = self._launcher.pools and self.config.pooled(job.job)
        limits = self.config.limits(job.job)  # pooled: the output cap alone
        pool = self.config.settings.pool
        in_pool = (
            pool.max_attempts_per_worker,
            pool.max_worker_memory,
            int(limits.get("output_bytes", 0)),
        )
        req = RunRequest(
            token=token,
            job_id=job_id,
            job=job.job,
            method=job.method,
            params=job.params,
            class_path=spec.class_path or f"jobs.{job.job}",
            attempt=claim.attempt,
            max_attempts=within(job.max_attempts, self.config.retry_policy(job.job).max_attempts),
            base_dir=str(self.config.base_dir),
            spool=self.spool.root_str,
            log_dir=self.spool.log_dir_str,
            log_path=self.spool.job_log_file(job_id),
            report_path=self._report_path(token),
            limits=None if pooled else limits,
            pool=in_pool if pooled else None,
        )
        started, now = from_timestamp(self._wall), self._now
        act = Active(token, claim, path, job, None, started, now + timeout, begun=now)
        act.report_path = req.report_path
        act.limits = limits
        act.pooled = pooled
        try:
            self._launcher.start(req)
        except (OSError, RuntimeError) as exc:
            logs.event("launch_error", logs.ERROR, job=job_id, error=exc)
            return Finish(act, Report(Outcome.HANDED_BACK))
        self.active[token] = act
        self._per_job[job.job] += 1
        return None

    def _report_path(self, token: str) -> str:
        """A name in tmp/ nobody can guess before the attempt creates it:
        producers may write tmp/, and a link planted under a predictable
        name would have the report written through it."""
        return self.spool.path_in("tmp", f"{token}.{secrets.token_hex(16)}.report.json")

    # ------------------------------------------------------------ following

    def started(self, token: str, pid: int, runner_id: str) -> None:
        act = self.active.get(token)
        if act is None:
            return
        act.pid = pid
        if act.stop is not None:  # cancelled or timed out before its pid was known
            self._stop_process(act)
        job = act.job
        logs.event(
            "started",
            job=job.id,
            name=f"{job.job}.{job.method}",
            attempt=act.claim.attempt,
            pid=pid,
            runner=runner_id,
        )

    def reported(self, token: str, pid: int, report: ChildReport, runner_id: str) -> None:
        """The attempt sent its report: it is over, though its process may
        still be exiting (the fork server reaps it and kills its group).
        A report wins over a kill we ordered, as in read_report."""
        act = self.active.get(token)
        if act is None:
            return
        if act.pid is None:  # its "started" line may come after the report
            self.started(token, pid, runner_id)
        del self.active[token]
        code = EXIT_OK if report.outcome == Outcome.SUCCEEDED else EXIT_FAILED
        self._ended(act, code, report)

    def exited(self, token: str, code: int) -> None:
        act = self.active.pop(token, None)
        if act is not None:
            self._ended(act, code, None)

    def _ended(self, act: Active, code: int, report: ChildReport | None) -> None:
        """Free the attempt's slot now; its record is written after the refill."""
        self._per_job[act.job.job] -= 1
        act.exited_at, act.ended = from_timestamp(self._wall), self._now
        self._exited.append((act, code, report))

    def take_finished(self) -> list[Finish]:
        """The attempts that ended since last asked, with what each amounted to."""
        done, self._exited = self._exited, []
        finished = []
        for act, code, report in done:
            if report is not None:
                finished.append(Finish(act, from_child(report, code)))
                continue
            timeout = within(act.job.timeout_seconds, self.config.timeout(act.job.job))
            finished.append(Finish(act, read_report(act.report_path, act, code, timeout)))
        return finished

    def has_job(self, job_id: str) -> bool:
        return any(a.job.id == job_id for a in self.active.values())

    # ------------------------------------------------------------ stopping attempts

    def kill(self, act: Active, why: Outcome, info: dict[str, Any] | None = None) -> None:
        act.stop = why
        act.stop_info = info or {}
        if act.pid is not None:
            self._stop_process(act)

    def _stop_process(self, act: Active) -> None:
        """Kill the attempt's process tree. A pooled attempt's pid is its pool
        worker's, which may already run the next attempt when the kill
        lands: the fork server kills it only while it still runs this one."""
        assert act.pid is not None
        if not act.pooled:
            kill_tree(act.pid)
            return
        assert self._launcher is not None
        try:
            self._launcher.stop(act.token)
        except OSError as exc:  # the fork server is gone: launcher_gone kills what is proven
            logs.event("stop_error", logs.ERROR, job=act.job.id, error=exc)

    def kill_all(self, why: Outcome) -> None:
        for act in self.active.values():
            if act.stop is None:
                self.kill(act, why)

    def enforce_timeouts(self, now: float) -> None:
        for act in list(self.active.values()):
            if act.stop is None and now >= act.deadline:
                self.kill(act, Outcome.TIMED_OUT)

    def control_changed(self) -> None:
        """Something in control/ may have changed: look at the requests next step."""
        self.control_dirty = True

    def check_control(self) -> None:
        """Act on cancel requests: kill a running attempt, cancel a pending job.

        Only requests that decoded and came from the runner's user get here
        (``control.Reader`` quarantines the rest); who asked and from where
        come from those alone."""
        self.control_dirty = False
        self._read_pauses()
        requests = self.control.requests(control.CANCEL)
        self.cancel_requests = {job_id: req.info() for job_id, req in requests.items()}
        by_id = {a.job.id: a for a in self.active.values()}
        for job_id, req in requests.items():
            act = by_id.get(job_id)
            if act is not None:
                if act.stop is None:
                    self.kill(act, Outcome.CANCELLED, req.info())
                continue
            where = self.spool.locate(job_id)
            if where is None or where[0] in TERMINAL:
                self._clear_request(job_id)
            elif where[0] is Status.PENDING:
                self._cancel_pending(req)

    def _read_pauses(self) -> None:
        """The pauses in force now; each change is logged once, when first seen."""
        found = self.control.requests(control.PAUSE)
        now_paused = frozenset(found)
        paused, resumed = claimgate.changes(self.paused, now_paused)
        for name in paused:
            req = found[name]
            shown = "(spool)" if name == claimgate.ALL else name
            logs.event("paused", job_name=shown, by=req.by, via=req.via)
        for name in resumed:
            logs.event("resumed", job_name="(spool)" if name == claimgate.ALL else name)
        if resumed:
            self.held_back = False  # what waited may be claimable now
        self.paused = now_paused

    def _cancel_pending(self, req: control.Request) -> None:
        try:
            done = actions.cancel(self.spool, req.job, by=req.by, via=req.via)
        except (Conflict, JobNotFound):
            return  # it moved meanwhile: the next look finds where
        except OSError as exc:
            logs.event("cancel_error", logs.ERROR, job=req.job, error=exc)
            return
        # "requested": another runner claimed it first and now owns the request.
        if done == "cancelled":
            self._clear_request(req.job)

    def _clear_request(self, job_id: str) -> None:
        try:
            control.clear_request(self.spool, control.CANCEL, job_id)
        except OSError as exc:
            logs.event("control_error", logs.ERROR, job=job_id, error=exc)

    # ------------------------------------------------------------ for the heartbeat

    def beat_jobs(self) -> list[BeatJob]:
        """What the heartbeat says of each attempt; caps the job logs on the way."""
        cap = self.config.settings.logs.job_log_max_bytes
        for act in self.active.values():
            if act.pid is not None and act.pid_created is None:
                act.pid_created = create_time(act.pid)
            if logs.cap_file(self.spool.job_log_file(act.job.id or ""), cap):
                logs.event("log_capped", logs.WARNING, job=act.job.id, max_bytes=cap)
        return [
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

    def deadlines(self) -> list[float]:
        return [a.deadline for a in self.active.values()]


def _kill_orphaned(act: Active) -> None:
    """An attempt whose fork server died: no parent of ours holds its pid
    any more, so it is killed only as proven (with what it left behind)."""
    assert act.pid is not None
    if not provenance.available():
        kill_tree(act.pid)
        return
    since = act.started_at.timestamp()
    attempt = provenance.Attempt(act.pid, act.pid_created, since, act.token, os.getpid())
    provenance.kill_proven(attempt)


def _complete_record(job: Job, entry: Entry, path: StrPath) -> Job:
    updates: dict[str, Any] = {} if job.id == entry.job_id else {"id": entry.job_id}
    if job.created_at is None:
        with contextlib.suppress(OSError):
            updates["created_at"] = from_timestamp(os.stat(path).st_mtime)
    if entry.name[: -len(".json")] != entry.job_id:
        # A name that is not UTF-8 must still be storable in the record.
        readable = os.fsencode(entry.name).decode("utf-8", "backslashreplace")
        updates["original_name"] = job.original_name or readable
    return job.model_copy(update=updates) if updates else job
