"""Intake: what is waiting in pending/, read once and kept in order.

Owns the runner's :class:`~jobspool.schedule.Schedule` and everything that
feeds it: loading a pending file (strict read, no-follow, size cap), giving
a hand-dropped file its job id, rechecking a file caught in the middle of its
publication, quarantining files that are not jobs, and the periodic rescan
(the correctness path: notifications only make it faster, invariant 8).
It also keeps the jobs as loaded, so a claim of the very same file need not
read and validate it again. A backlog is ordered from quick entries: from
the order snapshot where it vouches for a file (:mod:`jobspool.pendingorder`,
read at the first backlog only), else from a quick look at the file
(:mod:`jobspool.backlog`); a runner takes the first of these looks before
its allow-list check has passed (``look_ahead``: reads only), and leaves
what it looked at in the snapshot after its first claims (``save_order``).

Invariants: nothing here moves a job between statuses (claims belong to
dispatch); a file that is not a job goes to corrupt/ with its reason, never
deleted (invariant 5), and a young regular file gets time to be finished by
its writer first; what the schedule holds is a hint, the claim rename decides.

Which id a pending file runs under
----------------------------------
Producers may write anything into pending/, including a full record that
claims to be the runner's own retry: a revision, attempts, a history. So a
file says nothing trustworthy about itself unless it carries the runner's
seal (:mod:`jobspool.sealing`, invariant 12 of :mod:`jobspool.spool`): a MAC
of its bytes under a key only the runner's user can read, which every record
a runner publishes, and every record a person's retry moves into pending/,
carries. Without a valid seal for its own id a file is a fresh submission,
whatever it says: its bookkeeping is ignored (:func:`jobspool.model.as_submitted`,
applied by :meth:`Spool.load`; logged once as ``fields_ignored``).

The id then follows :func:`jobspool.leftovers.standing`, the rule that the
leftover sweep applies too, over the other copies of the name's id:

* none: the file runs under its name's id;
* the file is sealed and its revision is above every other copy's: it is the
  job's newest state, published by a runner (a retry, a hand-back) or a
  person (a retry) whose link is done and whose unlink of the old copy is
  not, yet or ever. It runs under its id; while a terminal copy is still
  there it is looked at again shortly (a person's retry in its instant; if
  the terminal copy stays, the leftover sweep keeps that one);
* the file is sealed but not newer: an earlier state of the job (a
  leftover, or a copy replayed); or it is unsealed and has the bytes of
  another copy, or is no newer than all of them: the source of a move out
  of pending/ cut short (a claim, a cancel). It never runs; the leftover
  sweep settles it after the lease (the other copy wins);
* an unsealed file that is none of these repeats an id in use: it is
  requeued at once under a fresh
  id, written as a new sealed record with its name kept as
  ``original_name`` (so that no reader ever finds it under the id of the
  job that owns it), and the job that owns the id keeps it. The fresh id is
  made from the file's identity (name, inode, size, mtime), so a crash
  between the new record and the removal of the old name, or a second
  runner, finds the requeued id and leaves the old name to corrupt/.

A name that is not an id at all runs under a fresh id, its name recorded as
``original_name`` when it is claimed. Producers cannot forge a seal, a runner
cannot start without the key, and what an unsealed file says about its
revision or its attempts is never believed.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
import time
from collections.abc import Callable

from jobspool import backlog, leftovers, logs, pendingorder
from jobspool.backlog import QuickEntry
from jobspool.errors import InvalidJobFile
from jobspool.fsops import HardLinked, NotRegularFile, StrPath
from jobspool.leftovers import Standing
from jobspool.model import Job, as_submitted, from_timestamp, is_valid_id
from jobspool.names import JSON, is_job_name, new_id
from jobspool.schedule import Entry, Schedule
from jobspool.spool import FileIdentity, Loaded, Spool
from jobspool.states import Status

# A hand-written file may be caught half-written; give its writer this long
# before calling it corrupt.
YOUNG_FILE_SECONDS = 2.0
# From this many new files at once (a runner started on a backlog), a quick
# look orders them and each is loaded in full only when it is claimed.
QUICK_FROM = 512
# How many loaded pending jobs are kept for their claim (a few MB at most).
LOADED_MAX = 4096
RECHECK_FIRST = 0.002
RECHECK_MAX = 0.5
CLAIM_RETRY_SECONDS = 0.5
# Requeued ids are stamped with the file's mtime, kept within the calendar.
LATEST_STAMP = 253402300799.0  # 9999-12-31T23:59:59Z


def requeue_id(name: str, seen: FileIdentity) -> str:
    """The fresh id of a file requeued under a new name: made from what the
    file is (its name, inode, size and mtime), not from chance, so that a
    second look at the very same file finds the same id. Sorts by the
    file's mtime, as ids made at submit sort by submission time."""
    _dev, ino, size, mtime_ns = seen
    text = f"{name}\0{ino}\0{size}\0{mtime_ns}".encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(text).hexdigest()[:8]
    seconds = min(max(mtime_ns / 1e9, 0.0), LATEST_STAMP)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(seconds))
    return f"{stamp}-{int(seconds % 1 * 1_000_000):06d}-{digest}"


def readable_name(name: str) -> str:
    """A file name that is not UTF-8, as text a record can hold."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def quarantine(spool: Spool, name: str, path: StrPath, reason: str, *, force: bool = False) -> None:
    """Move a file that is not a job to corrupt/; a young regular file gets time."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    young = time.time() - st.st_mtime < YOUNG_FILE_SECONDS
    if stat_mod.S_ISREG(st.st_mode) and young and not force:
        return  # its writer may not be done: the next rescan looks again
    try:
        dst = spool.quarantine(path, reason)
    except FileNotFoundError:
        return
    except OSError as exc:
        logs.event("quarantine_error", logs.ERROR, file=name, error=exc)
        return
    logs.event("corrupt", logs.ERROR, file=name, moved_to=dst.name, reason=reason)


class Intake:
    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        # Without the key, every retry it publishes would read as a fresh
        # submission: refuse to start instead (SpoolError says why).
        spool.seal_key()
        self.schedule = Schedule()
        # Stale copies found in pending/: said once, settled by the sweep.
        self._left: set[str] = set()
        self._loaded: dict[str, tuple[FileIdentity, Job]] = {}
        self._rechecks: dict[str, tuple[float, float]] = {}
        # Due jobs whose claim failed on I/O: due, just not claimable yet.
        self._claim_retries: set[str] = set()
        # The order snapshot, read at the first backlog (None: not yet).
        self._known: pendingorder.Known | None = None
        # Quick entries not yet left in the snapshot.
        self._unsaved: list[QuickEntry] = []

    # ------------------------------------------------------------ events

    def file_appeared(self, name: str) -> None:
        if is_job_name(name) and name not in self.schedule:
            self.load(name)

    def look_ahead(self) -> None:
        """The first rescan's reading, without its writing: a backlog's quick
        entries go into the schedule (hints, as ever), and the files that
        need a full load are left to the rescan, which finds them new.
        Read-only, so a runner takes it while its allow-list is checked."""
        present = self.spool.names(Status.PENDING)
        new = [n for n in present if n not in self.schedule] if len(self.schedule) else present
        if len(new) >= QUICK_FROM:
            with backlog.no_collection():
                found = self._quick_look(new)
                self.schedule.add_unverified_many([f for f in found if not isinstance(f, str)])

    def rescan(self) -> None:
        present = set(self.spool.names(Status.PENDING))
        self._left &= present
        for name in self.schedule.names() - present:
            self.schedule.discard(name)
        new = sorted(present - self.schedule.names())
        if len(new) < QUICK_FROM:
            for name in new:
                self.load(name)
            return
        with backlog.no_collection():
            looked = self._quick_look(new)
            self.schedule.add_unverified_many([f for f in looked if not isinstance(f, str)])
        for found in looked:
            if isinstance(found, str):
                self.load(found)

    def _quick_look(self, names: list[str]) -> list[QuickEntry | str]:
        """A backlog: ordered from the order snapshot where it vouches for a
        file (the first time only), else from a quick look at each file;
        each is loaded in full when it comes up for a claim (``take``)."""
        directory = str(self.spool.dir(Status.PENDING))
        key = self.spool.seal_key()
        known, self._known = self._known, {}
        if known is None:
            known = pendingorder.read(self.spool, key)
        found, rest = pendingorder.believe(directory, names, known)
        looked = backlog.scan_all(directory, rest, key, self.spool.max_job_bytes) if rest else []
        settled = [f for f in looked if not isinstance(f, str) and f.seen is not None]
        if len(settled) >= QUICK_FROM:  # else the snapshot lacks too few to rewrite it
            self._unsaved.extend(settled)
        return [*found, *looked]

    def save_order(self) -> None:
        """Add what the quick look found to the order snapshot, for the next
        start (after the claims: nothing waits for it); what the snapshot
        has of files still waiting stays in it."""
        if self._unsaved:
            found, self._unsaved = self._unsaved, []
            pendingorder.write(self.spool, self.spool.seal_key(), found, self._still_waiting)

    def _still_waiting(self, name: str) -> bool:
        return name in self.schedule

    def run_rechecks(self, now: float) -> None:
        for name, (due, _delay) in list(self._rechecks.items()):
            if due <= now:
                del self._rechecks[name]
                if name not in self.schedule:
                    self.load(name)

    # ------------------------------------------------------------ loading

    def load(self, name: str) -> None:
        path = self.spool.path_in(Status.PENDING, name)
        try:
            loaded = self.spool.load(path, single_link=True)
        except FileNotFoundError:
            self.schedule.discard(name)
            return
        except HardLinked as exc:
            self._twin(name, path, exc)
            return
        except (InvalidJobFile, NotRegularFile) as exc:
            quarantine(self.spool, name, path, str(exc))
            return
        except OSError as exc:
            logs.event("read_error", logs.ERROR, file=name, error=exc)
            return
        stem = name[: -len(JSON)]
        if not is_valid_id(stem):
            self._schedule(name, new_id(), loaded)
            return
        match leftovers.standing(loaded, leftovers.other_copies(self.spool, stem)):
            case Standing.ALONE | Standing.NEWER:
                self._schedule(name, stem, loaded)
            case Standing.IN_FLIGHT:
                self._recheck_soon(name)
            case Standing.STALE:
                self._leave(name)
            case Standing.TAKEN:
                self._requeue(name, path, loaded)

    def _schedule(self, name: str, job_id: str, loaded: Loaded) -> None:
        job = loaded.job
        if loaded.ignored:
            fields = ",".join(loaded.ignored)
            logs.event("fields_ignored", logs.WARNING, file=name, fields=fields)
        self._remember(name, loaded.ident, job)
        if job.created_at is None:  # hand-written: its age is the file's
            job = job.model_copy(update={"created_at": from_timestamp(loaded.mtime)})
        self.schedule.add(name, job_id, job)

    def _leave(self, name: str) -> None:
        if name not in self._left:
            self._left.add(name)
            logs.event(
                "duplicate_left",
                logs.WARNING,
                file=name,
                reason="a leftover copy of a job in another status; settled after the lease",
            )

    def _requeue(self, name: str, path: str, loaded: Loaded) -> None:
        """A new file under an id in use: publish it under a fresh id."""
        job_id = requeue_id(name, loaded.ident)
        where = self.spool.locate(job_id)
        if where is not None:
            self._requeued_before(name, path, job_id, where[1])
            return
        fresh, ignored = as_submitted(loaded.job)
        record = fresh.model_copy(
            update={
                "id": job_id,
                "original_name": readable_name(name),
                "created_at": fresh.created_at or from_timestamp(loaded.mtime),
                "revision": 1,
            }
        )
        try:
            moved = self.spool.rehome(path, record)
        except InvalidJobFile as exc:
            quarantine(self.spool, name, path, f"its id is in use, and {exc}", force=True)
            return
        except OSError as exc:  # EIO, disk full: the next rescan tries again
            logs.event("requeue_error", logs.ERROR, file=name, error=exc)
            return
        if moved:
            fields = ",".join(ignored) or None
            logs.event("requeued", logs.WARNING, file=name, job=job_id, fields_ignored=fields)
        self.load(f"{job_id}{JSON}")

    def _requeued_before(self, name: str, path: str, job_id: str, there: StrPath) -> None:
        """The fresh id exists: this very file was requeued, by another runner
        now (its removal comes in a moment) or before a crash (it never will)."""
        try:
            young = time.time() - os.lstat(there).st_mtime < YOUNG_FILE_SECONDS
        except OSError:
            young = True
        if young:
            self._recheck_soon(name)
            return
        quarantine(self.spool, name, path, f"already requeued as job {job_id}", force=True)

    def _twin(self, name: str, path: str, exc: HardLinked) -> None:
        twin = leftovers.tmp_twin(self.spool, path, YOUNG_FILE_SECONDS)
        if twin == "removed":  # its writer died before removing its tmp name
            self.load(name)
        elif twin == "young":  # a publish in flight: its tmp name goes in a moment
            self._recheck_soon(name)
        else:
            quarantine(self.spool, name, path, str(exc))

    def _remember(self, name: str, seen: FileIdentity, job: Job) -> None:
        """Keep a loaded job for its claim; bounded, oldest dropped first."""
        self._loaded.pop(name, None)
        self._loaded[name] = (seen, job)
        while len(self._loaded) > LOADED_MAX:
            del self._loaded[next(iter(self._loaded))]

    def _recheck_soon(self, name: str) -> None:
        """Look at a pending file again shortly (2 ms, doubling up to 0.5 s)."""
        _due, delay = self._rechecks.get(name, (0.0, RECHECK_FIRST / 2))
        delay = min(delay * 2, RECHECK_MAX)
        self._rechecks[name] = (time.monotonic() + delay, delay)

    # ------------------------------------------------------------ for claims

    def take(self, wall: float, fits: Callable[[Entry], bool]) -> Entry | None:
        """The best due job that fits, loaded in full: an entry from a quick
        look is loaded first, with every check, and taken only if it is
        then still the best (its full load may order it elsewhere, or find
        it is not a job to run)."""
        while True:
            entry = self.schedule.take(wall, fits)
            if entry is None or entry.verified:
                return entry
            self.load(entry.name)

    def read_claimed(self, name: str, path: str) -> Job:
        """The claimed job: as loaded if the claimed file is that very file."""
        known = self._loaded.pop(name, None)
        if known is not None and self.spool.same_file(path, known[0]):
            return known[1]
        return self.spool.read_job(path, single_link=True)

    def claim_failed(self, entry: Entry, wall: float) -> None:
        """Its claim hit an I/O error: still in pending/, try again a little later."""
        self.schedule.defer(entry, wall + CLAIM_RETRY_SECONDS)
        self._claim_retries.add(entry.name)

    def claimed(self, entry: Entry) -> None:
        self._claim_retries.discard(entry.name)

    def add_own_retry(self, job_id: str, record: Job) -> None:
        """Schedule a retry this runner just published, unless an event got there first."""
        name = f"{job_id}.json"
        if name not in self.schedule:
            self.schedule.add(name, job_id, record)

    # ------------------------------------------------------------ for the loop

    def has_ready(self, wall: float) -> bool:
        return self.schedule.has_ready(wall)

    def waiting_on_claims(self) -> bool:
        if self._claim_retries:
            self._claim_retries = {n for n in self._claim_retries if n in self.schedule}
        return bool(self._claim_retries)

    def wake_times(self, now: float, wall: float) -> list[float]:
        """Monotonic times at which intake has work: rechecks and the next due job."""
        times = [due for due, _delay in self._rechecks.values()]
        due = self.schedule.next_due()
        if due is not None:
            times.append(now + (due - wall))
        return times

    @property
    def rechecking(self) -> bool:
        return bool(self._rechecks)
