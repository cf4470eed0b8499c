"""Intake: what is waiting in pending/, read once and kept in order.

Owns the runner's :class:`~jobspool.schedule.Schedule` and everything that
feeds it: loading a pending file (strict read, no-follow, size cap), giving
a hand-dropped file its job id, rechecking a file caught in the middle of its
publication, quarantining files that are not jobs, and the periodic rescan
(the correctness path: notifications only make it faster, invariant 8).
It also keeps the jobs as loaded, so a claim of the very same file need not
read and validate it again.

Invariants: nothing here moves a job between statuses (claims belong to
dispatch); a file that is not a job goes to corrupt/ with its reason, never
deleted (invariant 5), and a young regular file gets time to be finished by
its writer first; what the schedule holds is a hint, the claim rename decides.
"""

from __future__ import annotations

import contextlib
import os
import stat as stat_mod
import time
from collections.abc import Callable

from jobspool import leftovers, logs
from jobspool.errors import InvalidJobFile
from jobspool.fsops import HardLinked, NotRegularFile, StrPath
from jobspool.model import Job, from_timestamp, is_valid_id
from jobspool.names import is_job_name, new_id
from jobspool.schedule import Entry, Schedule
from jobspool.spool import FileIdentity, Spool
from jobspool.states import Status

# A hand-written file may be caught half-written; give its writer this long
# before calling it corrupt.
YOUNG_FILE_SECONDS = 2.0
# How many loaded pending jobs are kept for their claim (a few MB at most).
LOADED_MAX = 4096
RECHECK_FIRST = 0.002
RECHECK_MAX = 0.5
CLAIM_RETRY_SECONDS = 0.5


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
        self.schedule = Schedule()
        self._loaded: dict[str, tuple[FileIdentity, Job]] = {}
        self._rechecks: dict[str, tuple[float, float]] = {}
        # Due jobs whose claim failed on I/O: due, just not claimable yet.
        self._claim_retries: set[str] = set()

    # ------------------------------------------------------------ events

    def file_appeared(self, name: str) -> None:
        if is_job_name(name) and name not in self.schedule:
            self.load(name)

    def rescan(self) -> None:
        present = set(self.spool.names(Status.PENDING))
        for name in self.schedule.names() - present:
            self.schedule.discard(name)
        for name in sorted(present - self.schedule.names()):
            self.load(name)

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
            job, seen = self.spool.read_job_stat(path, single_link=True)
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
        self._remember(name, seen, job)
        if job.created_at is None:  # hand-written: its age is the file's
            with contextlib.suppress(OSError):
                job = job.model_copy(update={"created_at": from_timestamp(os.stat(path).st_mtime)})
        self.schedule.add(name, self._job_id_for(name, job), job)

    def _twin(self, name: str, path: str, exc: HardLinked) -> None:
        twin = leftovers.tmp_twin(self.spool, path, YOUNG_FILE_SECONDS)
        if twin == "removed":  # its writer died before removing its tmp name
            self.load(name)
        elif twin == "young":  # a publish in flight: its tmp name goes in a moment
            self._recheck_soon(name)
        else:
            quarantine(self.spool, name, path, str(exc))

    def _job_id_for(self, name: str, job: Job) -> str:
        stem = name[: -len(".json")]
        if not is_valid_id(stem):
            return new_id()
        if job.revision == 0:  # hand-dropped: its name may repeat an old job's id
            where = self.spool.locate(stem)
            if where is not None and where[0] is not Status.PENDING:
                return new_id()
        return stem

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
        return self.schedule.take(wall, fits)

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
