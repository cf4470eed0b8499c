"""Purging finished jobs: the purge area and the removal of one job, whole.

Owns ``purge/`` (the purge area at the spool's root) and how a finished
job leaves the spool with everything that belongs to it: its record, its
log (``logs/jobs/<id>.log``), its progress file and any cancel request left
for it in control/. Which jobs are due is :mod:`jobspool.retention`'s
business; who purges when is the runner's retention stage
(:mod:`jobspool.stages.retention`) or ``jobspool purge``.

The steps, for a batch of jobs:

1. stage: rename ``<status>/<id>.json`` to ``purge/<status>~<id>.json``.
   That one rename takes the job out of its status atomically. A person's
   retry or cancel moves a job by link then unlink of the very same name
   (``Spool.move``), so exactly one of the two wins: when ours came first,
   the mover's unlink fails and it withdraws its copy (Conflict, the person
   is told); when the mover came first, our rename finds nothing and the
   job is not purged;
2. make the renames durable (the purge area, then each source directory)
   before anything else goes, so a power loss can never bring back a
   record whose log was removed;
3. look for the id elsewhere: a copy in another directory means a
   person's action was moving the job at that instant. A mover between
   its link and its unlink fails the unlink now (the name is ours) and
   withdraws its copy: the purge waits for that (at most
   :data:`WITHDRAW_SECONDS`), and goes on when the copy is gone, so that
   the race has one winner. A copy that stays is not in flight (a move cut
   short by a crash): the staged record goes back under its name (or, when
   that name is taken by a newer copy, to corrupt/ with its reason), and
   the leftovers sweep settles the two;
4. remove the side files (or, with an archive, move the log there), and
   make that durable;
5. remove the staged record (or link it into the archive first), and
   make that durable.

A crash anywhere leaves each job either untouched in its status or staged
in purge/; :meth:`Purger.resume` (run by a runner at start, and by
``jobspool purge``) finishes what is staged from step 2 on, and every step
may run again. So no job is ever left half removed: its record is in the
spool for as long as its log is.

Invariants: only files named as a staged job are ever taken from purge/;
nothing outside the spool (or the archive) is touched, no link is
followed (renames and unlinks act on names; the archive copies a log only
through :mod:`jobspool.sidefiles`); every file operation goes through
``spool.ops`` (invariant 10).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jobspool import control, progress, sidefiles
from jobspool.errors import InvalidJobFile, SpoolError
from jobspool.fsops import NotRegularFile
from jobspool.model import is_valid_id
from jobspool.names import JSON, RUN_SEP, is_job_name, job_id_of
from jobspool.retention import Candidate, Policy, is_due
from jobspool.spool import Spool
from jobspool.states import TERMINAL, Status

AREA = "purge"
# How long a copy found elsewhere may take to be withdrawn by its mover,
# whose unlink failed because the purge took the name: an fsync of the
# mover's destination directory, and metadata operations that a busy
# journal can hold for a second. A copy that stays longer is a crash's
# leftover (which costs a purge this wait, until the sweep settles it).
WITHDRAW_SECONDS = 2.0
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True, slots=True)
class Staged:
    """A job renamed into the purge area."""

    status: Status
    job_id: str

    @property
    def name(self) -> str:
        return f"{self.status.value}{RUN_SEP}{self.job_id}{JSON}"

    @classmethod
    def parse(cls, name: str) -> Staged | None:
        if name.startswith(".") or not name.endswith(JSON):
            return None
        status, sep, rest = name[: -len(JSON)].partition(RUN_SEP)
        if not sep or status not in {s.value for s in TERMINAL}:
            return None
        if not is_valid_id(rest):
            return None
        return cls(Status(status), rest)


@dataclass
class Tally:
    """What a purge did, per status."""

    removed: dict[str, int] = field(default_factory=dict)
    kept: int = 0  # found being moved by a person: left in the spool

    def add(self, status: Status, n: int = 1) -> None:
        self.removed[status.value] = self.removed.get(status.value, 0) + n

    def merge(self, other: Tally) -> None:
        for status, n in other.removed.items():
            self.removed[status] = self.removed.get(status, 0) + n
        self.kept += other.kept

    @property
    def total(self) -> int:
        return sum(self.removed.values())


def area(spool: Spool) -> str:
    """The purge area's path, made when missing; SpoolError if it is not a directory."""
    path = os.path.join(spool.root_str, AREA)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        spool.ops.mkdir(path)
        return path
    if not stat.S_ISDIR(st.st_mode):
        raise SpoolError(f"{path} is not a directory; refusing to use it")
    return path


def scan(
    spool: Spool, status: Status, policy: Policy, now: float, *, job: str | None = None
) -> Iterator[Candidate]:
    """Files of one terminal status that are due, as candidates (lazily: a
    caller may stop, and resume later, between any two).

    Due is judged on the file's modification time (:mod:`jobspool.retention`),
    so no file is opened, except with ``job``: then a due file is read for
    the name it ran as, and one that is not a readable job is skipped (it
    is not ours to judge here).
    """
    folder = spool.dir(status)
    try:
        it = os.scandir(folder)
    except FileNotFoundError:
        return
    with it:
        for entry in it:
            if not is_job_name(entry.name) or not is_valid_id(entry.name[: -len(JSON)]):
                continue  # a name no staged entry could carry
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # a link, a directory...: not a record, never moved from here
            mtime = st.st_mtime
            if not is_due(status, mtime, policy, now):
                continue
            name: str | None = None
            if job is not None:
                try:
                    name = spool.read_job(os.path.join(folder, entry.name)).job
                except (OSError, InvalidJobFile, NotRegularFile):
                    continue
                if name != job:
                    continue
            yield Candidate(status, entry.name, name, mtime)


class Purger:
    """Removes (or archives) finished jobs by the steps in the module's docstring."""

    def __init__(self, spool: Spool, archive: Path | None = None) -> None:
        self.spool = spool
        self.archive = archive
        self.area = area(spool)

    def staged_path(self, item: Staged) -> str:
        return os.path.join(self.area, item.name)

    def staged(self) -> list[Staged]:
        """What the purge area holds (left by a purge that was cut short).

        Anything at a staged name that is not a regular file was never
        staged by a purge: it goes to corrupt/ with its reason, so it cannot
        stop every later purge."""
        found = []
        for name in sorted(self.spool.ops.scandir_names(self.area)):
            item = Staged.parse(name)
            if item is None:
                continue
            path = self.staged_path(item)
            try:
                regular = stat.S_ISREG(os.lstat(path).st_mode)
            except FileNotFoundError:
                continue
            if regular:
                found.append(item)
            else:
                self.spool.quarantine(path, "not a staged record: purge/ holds only job files")
        return found

    def resume(self) -> Tally:
        """Finish every purge that was cut short (steps 2 to 5)."""
        return self.settle(self.staged())

    def purge(self, candidates: Iterable[Candidate]) -> Tally:
        """Stage each candidate, then settle the batch."""
        staged = [s for c in candidates if (s := self.stage(c.status, c.name)) is not None]
        return self.settle(staged)

    def stage(self, status: Status, name: str) -> Staged | None:
        """Step 1; None when the job left its status first (a person moved it)."""
        item = Staged(status, job_id_of(status, name))
        try:
            self.spool.ops.rename(self.spool.path_in(status, name), self.staged_path(item))
        except FileNotFoundError:
            return None
        return item

    def settle(self, items: list[Staged]) -> Tally:
        tally = Tally()
        if not items:
            return tally
        self.spool.sync_dir(self.area)  # step 2
        for status in sorted({i.status for i in items}):
            self.spool.sync_dir(self.spool.dir(status))
        going = []
        for item in items:  # step 3
            if self._moving(item) and not self._withdrawn(item):
                self._give_back(item)
                tally.kept += 1
            else:
                going.append(item)
        if not going:
            return tally
        for item in going:  # step 4
            self._side_files(item)
        self.spool.sync_dir(os.path.join(self.spool.log_dir_str, "jobs"))
        if self.archive is not None:
            for status in sorted({i.status for i in going}):
                self.spool.sync_dir(self._archive_dir(status))
        for item in going:  # step 5
            if self._record(item):
                tally.add(item.status)
        self.spool.sync_dir(self.area)
        return tally

    # ------------------------------------------------------------ step 3

    def _moving(self, item: Staged) -> bool:
        """Is the id anywhere in the spool besides our purge area?"""
        for status in Status:
            if status is Status.RUNNING:
                prefix = f"{item.job_id}{RUN_SEP}"
                if any(n.startswith(prefix) for n in self.spool.names(status)):
                    return True
            elif os.path.lexists(self.spool.path_in(status, f"{item.job_id}{JSON}")):
                return True
        return False

    def _withdrawn(self, item: Staged) -> bool:
        """Did the copy elsewhere go within WITHDRAW_SECONDS? (bounded polling)"""
        deadline = time.monotonic() + WITHDRAW_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.005)
            if not self._moving(item):
                return True
        return False

    def _give_back(self, item: Staged) -> None:
        """Put the staged record back under its name, never replacing a copy there."""
        src = self.staged_path(item)
        dst = self.spool.path_in(item.status, f"{item.job_id}{JSON}")
        try:
            self.spool.ops.link(src, dst)
        except FileNotFoundError:
            return  # another purge (jobspool purge beside a runner) settled it
        except FileExistsError:
            if not _same_file(src, dst):
                reason = f"superseded while being purged: {item.status}/{item.job_id}"
                with contextlib.suppress(FileNotFoundError):
                    self.spool.quarantine(src, reason)
                return
            # Given back already by another purge: only our name is left to drop.
        self.spool.sync_dir(self.spool.dir(item.status))
        self.spool.ops.unlink_quiet(src)
        self.spool.sync_dir(self.area)

    # ------------------------------------------------------------ step 4

    def _side_files(self, item: Staged) -> None:
        log = self.spool.job_log_file(item.job_id)
        if self.archive is None:
            self.spool.ops.unlink_quiet(log)
        else:
            self._archive_log(log, item)
        self.spool.ops.unlink_quiet(progress.progress_path(self.spool, item.job_id))
        control.clear_request(self.spool, control.CANCEL, item.job_id)

    # ------------------------------------------------------------ step 5

    def _record(self, item: Staged) -> bool:
        """Remove the staged record; False when another purge removed it first."""
        src = self.staged_path(item)
        try:
            if self.archive is not None:
                self._archive_record(src, item)
            self.spool.ops.unlink(src)
        except FileNotFoundError:
            return False
        return True

    # ------------------------------------------------------------ the archive

    def _archive_dir(self, status: Status) -> str:
        assert self.archive is not None
        folder = os.path.join(os.fspath(self.archive), status.value)
        self.spool.ops.mkdir(folder)
        return folder

    def _archive_record(self, src: str, item: Staged) -> None:
        """Link (or, across filesystems, copy) the record into the archive; an
        archived record with the same bytes is this one, archived before a
        crash. A different one (an earlier finish of the same id) keeps its
        name and ours takes the next free one."""
        folder = self._archive_dir(item.status)
        data: bytes | None = None
        for n in range(1000):
            name = f"{item.job_id}{JSON}" if n == 0 else f"{item.job_id}.{n}{JSON}"
            dst = os.path.join(folder, name)
            try:
                self._place(src, dst)
                break
            except FileExistsError:
                data = data if data is not None else self.spool.read_bytes(src)
                with contextlib.suppress(OSError):
                    if self.spool.read_bytes(dst) == data:
                        break
        self.spool.sync_dir(folder)

    def _place(self, src: str, dst: str) -> None:
        try:
            self.spool.ops.link(src, dst)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            tmp = f"{dst}.tmp"
            self.spool.ops.unlink_quiet(tmp)
            self.spool.ops.write_new(tmp, self.spool.read_bytes(src), durable=self.spool.durable)
            try:
                self.spool.ops.link(tmp, dst)
            finally:
                self.spool.ops.unlink_quiet(tmp)

    def _archive_log(self, log: str, item: Staged) -> None:
        """Move the log beside the archived record (a copy across filesystems)."""
        dst = os.path.join(self._archive_dir(item.status), f"{item.job_id}.log")
        try:
            self.spool.ops.rename(log, dst)
            return
        except FileNotFoundError:
            return  # no log, or moved before a crash
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        fd = sidefiles.open_file(log)
        if fd is None:
            return  # not a plain file of its own: nothing of it is copied
        try:
            out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_NOFOLLOW, 0o644)
        except OSError:
            os.close(fd)
            raise
        try:
            chunks = sidefiles.stream(fd, 1 << 62)  # closes fd once it ends or is closed
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[self.spool.ops.write(out, view) :]
            finally:
                getattr(chunks, "close", lambda: None)()
            if self.spool.durable:
                self.spool.ops.fsync(out)
        finally:
            os.close(out)
        self.spool.ops.unlink_quiet(log)


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except OSError:
        return False
    return (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev)
