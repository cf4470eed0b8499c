"""The spool: the only code that creates, renames or deletes job files.

How the queue works, in one place
---------------------------------
A job is one JSON file; the directory holding it is its status. New content
is always written to ``tmp/`` first (write, fsync), then *linked* into its
status directory under a name that must not exist yet, then the old name is
unlinked, then the destination directory is fsynced (a source directory
too, where a lost removal is not settled by the leftover rule).

Invariants
----------
Numbered as in the design's list where they are the same (1-5, 7); the
modules around this one refer to these numbers.

1. One job, one file, one status: the directory holding the file is the
   job's status. Outside tmp/ an id is in exactly one status directory once
   recovery has run; a crash between link and unlink leaves it in two, and
   :func:`jobspool.leftovers.resolve_duplicates` keeps one.
2. Whole files only: names appear only by link or rename of a complete,
   synced file, so a reader never sees a partial one. :meth:`Spool.submit`
   returns only once the file and its directory are durable (``durable``
   relaxes every fsync, for tests and tmpfs). Nothing is ever published
   from tmp/ after a crash: leftovers there are removed after an age limit
   (:func:`jobspool.leftovers.clean_tmp`).
3. Claim by rename: ``rename(pending/<id>.json,
   running/<id>~<runner>~<n>.json)``; the one rename that succeeds owns the
   job and its name records who and which attempt; everyone else gets
   ENOENT and moves on. No lock is taken.
4. Fencing, no replace: a publication never replaces anything (``link``
   fails with EEXIST, and that failure is how a second terminal copy is
   refused). When the source of a move vanished between our link and our
   unlink, someone else moved the job first (a recovering runner, a
   person): we unlink what we linked and report :class:`Conflict`. A
   runner first renames its claim to a "finishing" name (the fence), which
   fails once the claim was taken over, so a paused runner that comes back
   late can neither finish nor duplicate a job taken from it. If that
   finishing name vanishes after its record was published, the published
   copy stands.
5. Nothing is trusted unread, nothing is deleted: job files are read with a
   size cap (``max_job_bytes``), regular files only, and with a single link
   where the runner asks. Anything that is not a job goes to ``corrupt/``
   by rename, byte for byte, with a reason beside it
   (:meth:`Spool.quarantine`).
6. (Liveness: :mod:`jobspool.leases` and the runner's liveness stage,
   :mod:`jobspool.stages.liveness`.)
7. Attempts are counted at claim: :meth:`Spool.sync_claims` makes claim
   renames durable, so a job that brings its host down still stops.
8. (Rescans beside the watcher: :mod:`jobspool.stages.intake`.)
9. Every move but a claim raises the record's ``revision``; a claim keeps
   it (see :data:`jobspool.states.PRECEDENCE`). That is what the leftover
   rule ranks sealed copies by (invariant 12).
10. Every write, link, rename, unlink and fsync goes through ``Spool.ops``
    (a :class:`FileOps`), here and in the modules built on this one, so a
    fault injected there reaches every step.
11. A spool is a directory that ``jobspool init`` marked
    (:mod:`jobspool.sentinel`). The runner, the dashboard, the CLI and every
    submitter open it with :meth:`Spool.open`, which refuses a directory
    without the marker, or with a newer format, before creating anything:
    an unmounted network path is never turned into a fresh local spool.
12. Sealed records: every record a runner publishes, and every record a
    person's action moves into pending/, ends with a seal, a MAC of its
    bytes keyed with the spool's secret (:mod:`jobspool.sealing`); a submit
    carries none, since producers cannot read the key. A record read from
    pending/ or running/ (where producers' bytes arrive, a claim renaming
    them unchanged) without a valid seal for its own id is a producer's
    submission: :meth:`Spool.load` sets its bookkeeping aside
    (:func:`jobspool.model.as_submitted`), and neither the intake's rule
    for ids (:mod:`jobspool.stages.intake`) nor the leftover rule
    (:mod:`jobspool.leftovers`) ever ranks it above a sealed copy; a
    runner's publication into pending/ clears a name such a file holds
    (:meth:`Spool.finish`).

Around this module: names and ids in :mod:`jobspool.names`, leftovers in
:mod:`jobspool.leftovers`, human actions in :mod:`jobspool.actions`,
control requests in :mod:`jobspool.control`, progress files in
:mod:`jobspool.progress`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jobspool import codec, sealing, sentinel
from jobspool.errors import (
    Conflict,
    InvalidJobFile,
    JobNotFound,
    NotPublished,
    SpoolError,
    SpoolFull,
)
from jobspool.fsops import FileOps, NotRegularFile, StrPath
from jobspool.model import HistoryEntry, Job, JobView, as_submitted, is_valid_id, utcnow
from jobspool.names import (
    JSON,
    RUN_SEP,
    RunningName,
    default_actor,
    is_job_name,
    job_id_of,
    new_id,
    short_name,
)
from jobspool.states import Status, can_move

DIRS = (
    "tmp",
    "pending",
    "running",
    "completed",
    "failed",
    "cancelled",
    "corrupt",
    "control",
    "runners",
)
# Terminal first: while a move is half done, the copy furthest along is the
# truth (invariant 1).
LOOKUP_ORDER = (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PENDING, Status.RUNNING)


FileIdentity = tuple[int, int, int, int]


def identity(st: os.stat_result) -> FileIdentity:
    """Device, inode, size and modification time: what a rename keeps."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Sealed:
    """A record ready to publish and its bytes (see Spool.seal)."""

    job: Job
    data: bytes


# What one claim's finish publishes: (its running path, its destination, its record).
FinishItem = tuple[StrPath, Status, Sealed]


@dataclass
class _Finishing:
    """One claim on its way through Spool.finish_many's steps."""

    index: int
    job_id: str
    src: StrPath
    fin: str
    dst: str
    dst_status: Status
    sealed: Sealed
    tmp: str
    ours: tuple[int, int] | None = None


@dataclass(frozen=True)
class Loaded:
    """One job file as read (see Spool.load)."""

    job: Job  # as it may be trusted: a producer's bookkeeping set aside
    ident: FileIdentity
    sealed: bool  # carries a valid seal for the id its name says
    data: bytes
    mtime: float
    ignored: tuple[str, ...]  # bookkeeping fields set aside (as_submitted)


# How often a spool reader without the key looks for it again.
KEY_RETRY_SECONDS = 1.0
# A name in pending/ held by a producer's file is cleared this many times at
# most while a runner publishes there (invariant 12).
CLEAR_TRIES = 3


class Spool:
    """One spool directory tree. Cheap to create; holds no open files."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        durable: bool = True,
        max_job_bytes: int = 1024 * 1024,
        min_free_bytes: int = 0,
        min_free_inodes: int = 0,
        log_dir: str | os.PathLike[str] | None = None,
        ops: FileOps | None = None,
        create: bool = True,
    ) -> None:
        self.root = Path(root).absolute()
        self.durable = durable
        self.max_job_bytes = max_job_bytes
        self.min_free_bytes = min_free_bytes
        self.min_free_inodes = min_free_inodes
        self.log_dir = Path(log_dir).absolute() if log_dir else self.root / "logs"
        self.ops = ops or FileOps()
        self._dirs: dict[Status | str, Path] = {}
        self._dir_strs = {d: str(self.root / d) for d in (*DIRS, *Status)}
        self._job_logs = str(self.log_dir / "jobs")
        self.root_str, self.log_dir_str = str(self.root), str(self.log_dir)
        self._trusted = {self._dir_strs[s] for s in (*Status,) if s.terminal}
        self._key: bytes | None = None
        self._key_retry = 0.0
        if create:
            self.ensure_layout()

    @classmethod
    def open(cls, root: str | os.PathLike[str], **options: Any) -> Spool:
        """The spool at root, once its marker says it is one (invariant 11);
        :class:`jobspool.sentinel.NotASpool` otherwise, with nothing created.

        The constructor itself checks nothing: tests and ``jobspool init``
        build spools with it.
        """
        sentinel.check(Path(root).absolute())
        return cls(root, **options)

    # ----------------------------------------------------------- layout

    def dir(self, status: Status | str) -> Path:
        found = self._dirs.get(status)
        if found is None:
            found = self._dirs[status] = self.root / str(status)
        return found

    def path_in(self, status: Status | str, name: str) -> str:
        """A file's path as a string: the hot paths avoid pathlib's cost."""
        return os.path.join(self._dir_strs[status], name)

    def ensure_layout(self) -> None:
        """Create missing directories; refuse a status directory that is a link.

        The spool's key is made here too when it is missing (``jobspool init``
        runs as the runner's user), on a best-effort basis: anyone else
        cannot make it and needs none (invariant 12).
        """
        for name in (*DIRS, "logs"):
            path = self.log_dir if name == "logs" else self.root / name
            if path.is_symlink():
                raise SpoolError(f"{path} is a symbolic link; refusing to use it")
            if path.exists() and not path.is_dir():
                raise SpoolError(f"{path} exists and is not a directory")
            try:
                self.ops.mkdir(path)
            except OSError as exc:
                raise SpoolError(f"cannot create {path}: {exc.strerror}") from None
        self.ops.mkdir(self.log_dir / "jobs")
        with contextlib.suppress(SpoolError):
            self.seal_key()

    def job_log_path(self, job_id: str) -> Path:
        return Path(self.job_log_file(job_id))

    def job_log_file(self, job_id: str) -> str:
        return os.path.join(self._job_logs, f"{job_id}.log")

    # ----------------------------------------------------------- reading

    def names(self, status: Status | str) -> list[str]:
        """Job file names in one status directory, unsorted, without opening any."""
        try:
            return [n for n in self.ops.scandir_names(self.dir(status)) if is_job_name(n)]
        except FileNotFoundError:
            return []

    def count(self, status: Status | str) -> int:
        return len(self.names(status))

    def counts(self) -> dict[str, int]:
        return {s.value: self.count(s) for s in Status}

    def read_bytes(self, path: StrPath, *, single_link: bool = False) -> bytes:
        return self._read_capped(path, single_link)[0]

    def _read_capped(self, path: StrPath, single_link: bool) -> tuple[bytes, os.stat_result]:
        data, st = self.ops.read_regular_stat(path, self.max_job_bytes, single_link=single_link)
        if len(data) > self.max_job_bytes:
            raise InvalidJobFile(f"file is larger than the {self.max_job_bytes}-byte cap")
        return data, st

    def read_job(self, path: StrPath, *, single_link: bool = False) -> Job:
        """Parse one job file; InvalidJobFile or NotRegularFile if it is not a job.

        The runner reads with single_link: a file with a second name may be a
        link planted to something outside the spool (invariant 5).
        """
        return self.read_job_stat(path, single_link=single_link)[0]

    def read_job_stat(
        self, path: StrPath, *, single_link: bool = False
    ) -> tuple[Job, FileIdentity]:
        """read_job, plus the identity of the file read (see same_file)."""
        loaded = self.load(path, single_link=single_link)
        return loaded.job, loaded.ident

    def load(self, path: StrPath, *, single_link: bool = False) -> Loaded:
        """Read one job file and judge its seal (invariant 12).

        In pending/ and running/ (and anywhere but a terminal directory) a
        record without a valid seal for the id its name says is what a
        producer wrote: its bookkeeping is set aside. A terminal directory
        is written by the runner's user alone.
        """
        data, st = self._read_capped(path, single_link)
        job = codec.decode_job(data)
        folder, name = os.path.split(os.fspath(path))
        sealed = False
        ignored: list[str] = []
        if folder not in self._trusted:
            sealed = job.id == job_id_of(Status.RUNNING, name) and self._verify(data)
            if not sealed:
                job, ignored = as_submitted(job)
        return Loaded(job, identity(st), sealed, data, st.st_mtime, tuple(ignored))

    # ----------------------------------------------------------- the seal

    def seal_key(self) -> bytes:
        """The spool's key, made on first use; SpoolError if it cannot be had.

        Only the runner's user can read it: a runner calls this at start, so
        that a runner without it refuses to start rather than publish records
        that would read as unsealed.
        """
        if self._key is None:
            folder = self.root
            try:
                try:
                    self._key = sealing.read_key(folder)
                except FileNotFoundError:
                    self._key = sealing.create_key(folder, durable=self.durable)
            except OSError as exc:
                raise SpoolError(
                    f"cannot use the spool's key {sealing.key_path(folder)}: "
                    f"{exc.strerror or exc}; run as the runner's user"
                ) from None
        return self._key

    def _verify(self, data: bytes) -> bool:
        """Whether data is sealed with this spool's key. A reader that cannot
        read the key (a producer) sees every record as unsealed."""
        if self._key is None and time.monotonic() >= self._key_retry:
            try:
                self._key = sealing.read_key(self.root)
            except (OSError, SpoolError):
                self._key_retry = time.monotonic() + KEY_RETRY_SECONDS
        return self._key is not None and sealing.is_sealed(data, self._key)

    def _publishable(self, record: Job, *, sealed: bool) -> bytes:
        data = self.encode(record)
        if not sealed:
            return data
        data = sealing.seal(data, self.seal_key())
        if len(data) > self.max_job_bytes:
            raise InvalidJobFile(
                f"job {record.id} would be {len(data)} bytes; the cap is {self.max_job_bytes}"
            )
        return data

    def same_file(self, path: StrPath, known: FileIdentity) -> bool:
        """True if path is still the single-linked regular file once read as
        ``known``. Published files are never modified (a new version is a new
        file), and a rename keeps all of these, so a claimed job need not be
        read and validated twice."""
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and identity(st) == known

    def running_entries(self) -> list[tuple[RunningName, Path]]:
        out = []
        for name in self.names(Status.RUNNING):
            parsed = RunningName.parse(name)
            if parsed is not None:
                out.append((parsed, self.dir(Status.RUNNING) / name))
        return out

    def locate(self, job_id: str) -> tuple[Status, Path] | None:
        """Where the job file is, without reading it."""
        if not is_valid_id(job_id):
            return None
        for status in LOOKUP_ORDER:
            if status is Status.RUNNING:
                prefix = job_id + RUN_SEP
                for name in self.names(status):
                    if name.startswith(prefix):
                        return status, self.dir(status) / name
                continue
            path = self.dir(status) / f"{job_id}{JSON}"
            if os.path.lexists(path):
                return status, path
        return None

    def find(self, job_id: str) -> JobView | None:
        """The job in whatever status it is; None if it is nowhere.

        A job moving while we look can slip past one pass (it left running/
        after we looked at cancelled/, say), so "nowhere" is asked again.
        """
        for _ in range(3):
            where = self.locate(job_id)
            if where is None:
                continue
            status, path = where
            try:
                job = self.read_job(path)
            except FileNotFoundError:
                continue
            except (InvalidJobFile, NotRegularFile, OSError):
                return None
            job = job.model_copy(update={"id": job_id})
            return JobView(status=status.value, record=job, path=str(path))
        return None

    def get(self, job_id: str) -> JobView:
        view = self.find(job_id)
        if view is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return view

    def view(self, status: Status, name: str) -> JobView | None:
        """Read one listed file; None if it moved meanwhile or is not a job."""
        path = self.dir(status) / name
        try:
            job = self.read_job(path)
        except (FileNotFoundError, InvalidJobFile, NotRegularFile, OSError):
            return None
        job_id = job_id_of(status, name)
        return JobView(
            status=status.value, record=job.model_copy(update={"id": job_id}), path=str(path)
        )

    def list_jobs(
        self, status: Status, *, limit: int = 50, offset: int = 0, newest_first: bool = True
    ) -> list[JobView]:
        """One page of a status directory, ordered by id; opens only that page."""
        names = sorted(self.names(status), reverse=newest_first)
        out = []
        for name in names[offset : offset + limit]:
            view = self.view(status, name)
            if view is not None:
                out.append(view)
        return out

    def pending_in_order(self) -> list[JobView]:
        """Pending jobs as a runner would take them (priority, then age)."""
        views = [v for n in self.names(Status.PENDING) if (v := self.view(Status.PENDING, n))]
        return sorted(views, key=lambda v: v.record.sort_key())

    # ----------------------------------------------------------- writing

    def check_free_space(self) -> None:
        if not (self.min_free_bytes or self.min_free_inodes):
            return
        if hasattr(os, "statvfs"):
            st = os.statvfs(self.root)
            free, inodes = st.f_bavail * st.f_frsize, st.f_favail
        else:  # pragma: no cover - Windows has no inode count
            free, inodes = shutil.disk_usage(self.root).free, self.min_free_inodes
        if free < self.min_free_bytes:
            raise SpoolFull(
                f"spool {self.root} has {free} bytes free; submit needs {self.min_free_bytes}"
            )
        if inodes < self.min_free_inodes:
            raise SpoolFull(f"spool {self.root} has {inodes} inodes free; submit needs more")

    def write_tmp(self, data: bytes, label: str, *, durable: bool | None = None) -> str:
        """Write data to a new file in tmp/ (fsynced when durable, unless the
        caller flushes it itself) and return its path: the first step of
        every publication (invariant 2)."""
        path = self.path_in("tmp", f"{label}.{secrets.token_hex(6)}.tmp")
        self.ops.write_new(path, data, durable=self.durable if durable is None else durable)
        return path

    def sync_dir(self, path: StrPath) -> None:
        """Make a directory's entries durable, unless the spool is not durable."""
        if self.durable:
            self.ops.fsync_dir(path)

    def encode(self, job: Job) -> bytes:
        data = codec.encode_job(job, self.max_job_bytes)
        if len(data) > self.max_job_bytes:
            raise InvalidJobFile(
                f"job {job.id} would be {len(data)} bytes; the cap is {self.max_job_bytes}"
            )
        return data

    def _as_new(
        self,
        job: Job,
        *,
        by: str | None,
        via: str | None,
        note: str | None = None,
        actor: str | None = None,
    ) -> Job:
        """The record a new job is published as: its id, times and "submitted"
        entry; ``actor`` is who submitted it when neither the job nor ``by`` says."""
        job_id = job.id or new_id()
        if not is_valid_id(job_id):
            raise InvalidJobFile(f"{job_id!r} is not a valid job id")
        # A generated id is new by construction (time, pid and 32 random
        # bits), and the link that publishes never replaces: only an id the
        # caller chose needs looking for among the finished jobs.
        if job.id is not None and self.locate(job_id) is not None:
            raise Conflict(f"a job with id {job_id} already exists")
        now = utcnow()
        return job.model_copy(
            update={
                "id": job_id,
                "created_at": job.created_at or now,
                "submitted_by": job.submitted_by or by or actor or default_actor(),
                "revision": 1,
                "history": [
                    *job.history,
                    HistoryEntry(at=now, action="submitted", by=by, via=via, note=note),
                ],
            }
        )

    def submit_many(
        self, jobs: Sequence[Job], *, by: str | None = None, via: str | None = None
    ) -> list[str]:
        """Publish new jobs as one group commit; returns their ids in order,
        once all are durable (invariant 2 for each).

        The order is what makes one flush enough: every file is written
        whole into tmp/, then one flush of the filesystem makes all their
        contents durable (``FileOps.sync_files``) before any of them is
        linked into pending/, and one fsync of pending/ makes the names
        durable. A power loss anywhere leaves each job absent or whole,
        never empty or cut (the power-loss enumeration checks it). On an
        error nothing stays published but what a runner took meanwhile:
        :class:`NotPublished` names those ids.
        """
        self.check_free_space()
        actor = by or default_actor()  # once: it asks the OS and the environment
        records = [self._as_new(job, by=by, via=via, actor=actor) for job in jobs]
        ids = [r.id or "" for r in records]
        if len(set(ids)) != len(ids):
            raise Conflict("the batch names the same job id twice")
        datas = [self.encode(r) for r in records]
        tmps: list[str] = []
        published: list[tuple[str, tuple[int, int], str]] = []
        try:
            for job_id, data in zip(ids, datas, strict=True):
                tmps.append(self.write_tmp(data, job_id, durable=False))
            if self.durable:
                self.ops.sync_files(self.dir("tmp"), tmps)
            for job_id, tmp in zip(ids, tmps, strict=True):
                dst = self.path_in(Status.PENDING, f"{job_id}{JSON}")
                published.append((job_id, self._link_out(tmp, dst), dst))
            self.sync_dir(self._dir_strs[Status.PENDING])
        except BaseException as exc:
            for tmp in tmps[len(published) :]:
                self._drop_tmp(tmp)
            raise self._batch_failed(published, exc) from exc
        return ids

    def _batch_failed(
        self, published: list[tuple[str, tuple[int, int], str]], exc: BaseException
    ) -> NotPublished:
        """Withdraw what the batch published; the error names what a runner kept."""
        kept = []
        for job_id, ours, dst in published:
            with contextlib.suppress(OSError):
                self._withdraw(ours, dst)
            if os.path.lexists(dst) or self.locate(job_id) is not None:
                kept.append(job_id)
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, FileExistsError):
            what = "a job with one of its ids already exists"
        return NotPublished(
            f"the batch was not published ({what}); "
            f"{len(kept)} of its jobs had been taken by a runner and stay queued",
            kept,
        )

    def submit(
        self, job: Job, *, by: str | None = None, via: str | None = None, note: str | None = None
    ) -> str:
        """Publish a new job in pending/; returns its id once it is durable
        (invariant 2). ``note`` goes on the job's "submitted" history entry
        (the one entry a producer writes: :func:`jobspool.model.as_submitted`)."""
        self.check_free_space()
        record = self._as_new(job, by=by, via=via, note=note)
        job_id = record.id or ""
        tmp = self.write_tmp(self.encode(record), job_id)
        dst = self.path_in(Status.PENDING, f"{job_id}{JSON}")
        try:
            ours = self._link_out(tmp, dst)
        except FileExistsError:
            raise Conflict(f"a job with id {job_id} already exists") from None
        try:
            self.sync_dir(self._dir_strs[Status.PENDING])
        except Exception:  # an error, not a crash: undo what we did
            # Not acknowledged, so not published: the caller may submit again.
            self._withdraw(ours, dst)
            raise
        return job_id

    def _link_out(self, tmp: str, dst: str) -> tuple[int, int]:
        """Publish tmp as dst (never replacing: invariant 4), then drop the tmp
        name at once.

        Dropping it before the directory fsync keeps the window in which the
        published file has two names (which a runner must not mistake for a
        planted link) to a few microseconds. Returns the file's identity, so
        that an undo removes only this very file.
        """
        st = os.stat(tmp)
        try:
            self.ops.link(tmp, dst)
        except BaseException:
            self._drop_tmp(tmp)
            raise
        self._drop_tmp(tmp)
        return st.st_ino, st.st_dev

    def _drop_tmp(self, tmp: str) -> None:
        """Best effort: a tmp name left behind is removed later by leftovers.clean_tmp."""
        with contextlib.suppress(OSError):
            self.ops.unlink_quiet(tmp)

    def claim(self, pending_name: str, claim: RunningName) -> str | None:
        """Take a pending file by rename (invariant 3); None when another
        process took it first."""
        src = self.path_in(Status.PENDING, pending_name)
        dst = self.path_in(Status.RUNNING, claim.filename)
        if os.path.lexists(dst):
            # This very attempt is claimed already; a rename would replace it
            # (invariant 4).
            return None
        try:
            self.ops.rename(src, dst)
        except OSError:
            # On NFS the reply to a rename that did happen can be lost and the
            # retried call fail; the destination name is ours alone, so its
            # presence says whether we won.
            if os.path.lexists(dst):
                return dst
            if not os.path.lexists(src):
                return None  # another runner (or a person) took it first
            raise
        return dst

    def move(
        self,
        src: StrPath,
        src_status: Status,
        dst_status: Status,
        job: Job,
        *,
        dst_name: str | None = None,
    ) -> str:
        """Publish job's new content in dst_status and remove src, or raise Conflict.

        Never replaces an existing file; if src vanished meanwhile, the new
        copy is withdrawn again and the other actor's move stands (invariant
        4). The record's revision is raised (invariant 9).
        """
        if not can_move(src_status, dst_status):
            raise Conflict(f"a {src_status} job cannot become {dst_status}")
        job_id = job.id or ""
        dst = self.path_in(dst_status, dst_name or f"{job_id}{JSON}")
        record = job.model_copy(update={"revision": job.revision + 1})
        data = self._publishable(record, sealed=dst_status is Status.PENDING)
        tmp = self.write_tmp(data, job_id)
        try:
            ours = self._link_out(tmp, dst)
        except FileExistsError:
            raise Conflict(f"job {job_id} is already {dst_status}") from None
        try:
            self.sync_dir(self._dir_strs[dst_status])
            self.ops.unlink(src)
        except Exception as exc:  # an error, not a crash: undo what we did
            self._withdraw(ours, dst)
            if isinstance(exc, FileNotFoundError):
                raise Conflict(f"job {job_id} was moved by another process") from None
            raise
        if dst_status is not src_status:
            # The removal is already done; a lost one only leaves a duplicate
            # that leftovers.resolve_duplicates settles (invariant 1), so an
            # error here is not fatal.
            with contextlib.suppress(OSError):
                self.sync_dir(self._dir_strs[src_status])
        return dst

    def seal(self, job: Job, updates: dict[str, Any] | None = None) -> Sealed:
        """The record a finish publishes: job with updates, as its next
        revision (invariant 9), encoded once.

        Done by the caller's own thread, so that a publisher thread only
        does file I/O (and holds the GIL for as little as possible).
        InvalidJobFile if the record cannot be written (over the size cap).
        The bytes carry the seal (invariant 12).
        """
        record = job.model_copy(update={**(updates or {}), "revision": job.revision + 1})
        return Sealed(record, self._publishable(record, sealed=True))

    def finish(self, src: StrPath, dst_status: Status, sealed: Sealed) -> str:
        """A runner publishes the outcome of its own claim ``src``.

        1. write the new record to tmp/ (a full disk fails here, nothing moved);
        2. fence (invariant 4): rename the claim to its finishing name. ENOENT
           means another runner recovered the job: Conflict, and nothing was
           published;
        3. link the record into dst_status without replacing. EEXIST means the
           job already has that state (another copy finished it): our copy is
           quarantined, Conflict. In pending/ the name may instead be held by
           a producer's file, or by an older copy of ours: that file goes to
           corrupt/ and the link is tried again (invariant 12);
        4. sync dst_status's folder, then unlink the finishing name. Other I/O
           errors before this completes put the claim back under its name, so
           the caller can retry later.
        """
        [outcome] = self.finish_many([(src, dst_status, sealed)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def finish_many(self, items: Sequence[FinishItem]) -> list[str | Exception]:
        """:meth:`finish` for a group of claims, as one group commit: one flush
        of all their new records (``FileOps.sync_files``) instead of an fsync
        each, and one fsync per destination folder instead of one per job.

        Each claim goes through finish's steps in finish's order; only steps
        of one kind are done together, so a crash at any point leaves every
        job in a state its own finish could have left (bench/crashpoints.py
        enumerates them). Returns, in the items' order, each one's published
        path or the exception its finish alone would have raised; one item's
        error never stops the others.
        """
        out: dict[int, str | Exception] = {}
        staged = self._stage_records(items, out)
        fenced = [one for one in staged if self._fence(one, out)]
        linked = [one for one in fenced if self._link_fenced(one, out)]
        synced = self._sync_linked(linked, out)
        for one in synced:
            self._drop_finishing(one, out)
        # running/ is not synced here: if a power loss brings a finishing
        # name back, the job also has its newer copy in its destination, and
        # leftovers.resolve_duplicates keeps that one (invariant 1). The
        # runner's next claim batch syncs running/ anyway.
        return [out[index] for index in range(len(items))]

    def _stage_records(
        self, items: Sequence[FinishItem], out: dict[int, str | Exception]
    ) -> list[_Finishing]:
        """Step 1 for each item: its record written to tmp/ and made durable
        (one flush for a group; an fsync of the file for one alone)."""
        group = len(items) > 1 and self.durable
        staged = []
        for index, (src, dst_status, sealed) in enumerate(items):
            claim = RunningName.parse(os.path.basename(src))
            if claim is None:
                out[index] = Conflict(f"{src} is not a claim")
                continue
            job_id = sealed.job.id or claim.job_id
            try:
                tmp = self.write_tmp(sealed.data, job_id, durable=False if group else None)
            except Exception as exc:
                out[index] = exc
                continue
            fin = self.path_in(Status.RUNNING, claim.finishing().filename)
            dst = self.path_in(dst_status, f"{job_id}{JSON}")
            staged.append(_Finishing(index, job_id, src, fin, dst, dst_status, sealed, tmp))
        if group and staged:
            try:
                self.ops.sync_files(self.dir("tmp"), [one.tmp for one in staged])
            except Exception as exc:  # nothing was moved yet: each claim stays as it is
                for one in staged:
                    self._drop_tmp(one.tmp)
                    out[one.index] = exc
                return []
        return staged

    def _fence(self, one: _Finishing, out: dict[int, str | Exception]) -> bool:
        """Step 2: rename the claim to its finishing name (invariant 4)."""
        try:
            self.ops.rename(one.src, one.fin)
            return True
        except FileNotFoundError:
            out[one.index] = Conflict(f"job {one.job_id} was taken over by another runner")
        except Exception as exc:
            out[one.index] = exc
        self._drop_tmp(one.tmp)
        return False

    def _link_fenced(self, one: _Finishing, out: dict[int, str | Exception]) -> bool:
        """Step 3: link the record into its destination, never replacing."""
        try:
            one.ours = self._link_claimed(one.tmp, one.dst, one.dst_status, one.sealed.job)
            return True
        except FileExistsError:
            try:
                why = f"duplicate claim: job {one.job_id} is already {one.dst_status}"
                self.quarantine(one.fin, why)
                out[one.index] = Conflict(f"job {one.job_id} is already {one.dst_status}")
            except Exception as exc:
                out[one.index] = exc
        except Exception as exc:  # an error, not a crash: undo what we did
            self._unfence(one.fin, one.src)
            out[one.index] = exc
        return False

    def _sync_linked(
        self, linked: list[_Finishing], out: dict[int, str | Exception]
    ) -> list[_Finishing]:
        """Step 4: one fsync per destination folder; the items it made durable."""
        failed: dict[Status, Exception] = {}
        for status in dict.fromkeys(one.dst_status for one in linked):
            try:
                self.sync_dir(self._dir_strs[status])
            except Exception as exc:
                failed[status] = exc
        for one in linked:
            if one.dst_status in failed:  # an error, not a crash: undo what we did
                self._undo_link(one)
                out[one.index] = failed[one.dst_status]
        return [one for one in linked if one.dst_status not in failed]

    def _drop_finishing(self, one: _Finishing, out: dict[int, str | Exception]) -> None:
        """Step 5: the record is durable in its destination; the claim goes."""
        try:
            self.ops.unlink(one.fin)
        except FileNotFoundError:
            # Someone moved our finishing name while we were paused past our
            # lease: a take-over, or resolve_duplicates keeping our published
            # copy as the newest. Withdrawing that copy could leave the job
            # nowhere but corrupt/; it stands (a terminal copy wins anyway:
            # invariant 1).
            pass
        except Exception as exc:  # an error, not a crash: undo what we did
            self._undo_link(one)
            out[one.index] = exc
            return
        out[one.index] = one.dst

    def _undo_link(self, one: _Finishing) -> None:
        try:
            if one.ours is not None:
                self._withdraw(one.ours, one.dst)
        finally:
            self._unfence(one.fin, one.src)

    def _link_claimed(self, tmp: str, dst: str, dst_status: Status, record: Job) -> tuple[int, int]:
        """_link_out for a finish: in pending/, a name held by a file that is
        not a sealed copy at least as new as ours is cleared first."""
        if dst_status is not Status.PENDING:
            return self._link_out(tmp, dst)
        st = os.stat(tmp)
        try:
            for _ in range(CLEAR_TRIES):
                try:
                    self.ops.link(tmp, dst)
                    return st.st_ino, st.st_dev
                except FileExistsError:
                    if not self._clear(dst, record):
                        raise
            raise FileExistsError(errno.EEXIST, "the name is taken again and again", dst)
        finally:
            self._drop_tmp(tmp)

    def _clear(self, dst: str, record: Job) -> bool:
        """Move a producer's file (or an older copy) out of our pending name;
        False if what holds it is a sealed copy at least as new as ours."""
        try:
            there = self.load(dst)
        except FileNotFoundError:
            return True
        except (InvalidJobFile, OSError):
            there = None
        if there is not None and there.sealed and there.job.revision >= record.revision:
            return False
        why = "not sealed" if there is None or not there.sealed else "an older copy"
        with contextlib.suppress(FileNotFoundError):
            name = os.path.basename(dst)
            self.quarantine(dst, f"held the name {name} ({why}) as a runner published there")
        return True

    def rehome(self, src: StrPath, record: Job) -> bool:
        """Requeue the pending file src as pending/<record.id>.json (sealed:
        the runner wrote it), then remove src. False, with nothing done, when
        that name exists already (this very file was requeued before)."""
        job_id = record.id or ""
        dst = self.path_in(Status.PENDING, f"{job_id}{JSON}")
        tmp = self.write_tmp(self._publishable(record, sealed=True), job_id)
        try:
            ours = self._link_out(tmp, dst)
        except FileExistsError:
            return False
        try:
            self.sync_dir(self._dir_strs[Status.PENDING])
        except Exception:  # an error, not a crash: undo what we did
            self._withdraw(ours, dst)
            raise
        # A crash before this removal is durable leaves both names: the
        # requeued id is made from src's identity, so src is then known as
        # done (jobspool.stages.intake).
        self.ops.unlink_quiet(src)
        with contextlib.suppress(OSError):
            self.sync_dir(self._dir_strs[Status.PENDING])
        return True

    def _unfence(self, fin: str, src: StrPath) -> None:
        """Nothing was published: put the claim back under its name, to retry later."""
        with contextlib.suppress(OSError):
            self.ops.rename(fin, src)

    def _withdraw(self, ours: tuple[int, int], dst: StrPath) -> None:
        """Remove dst only if it is still the very file we published.

        Compared by inode: dst may have been claimed and replaced by a newer
        copy meanwhile.
        """
        try:
            there = os.lstat(dst)
        except FileNotFoundError:
            return
        if (there.st_ino, there.st_dev) == ours:
            # Not synced: if a power loss brings the name back, it is a whole,
            # newer copy, and leftovers.resolve_duplicates keeps it over the
            # older one (invariant 1).
            self.ops.unlink(dst)

    def quarantine(self, path: StrPath, reason: str) -> Path:
        """Move anything that is not a job into corrupt/, byte for byte, with a
        reason (invariant 5).

        The entry itself is renamed (a link stays a link, a FIFO a FIFO), so
        nothing it points to is read or touched.
        """
        corrupt = self.dir("corrupt")
        base = short_name(os.path.basename(path).lstrip(".") or "unnamed")
        dst = corrupt / base
        n = 0
        while os.path.lexists(dst) or os.path.lexists(dst.with_name(dst.name + ".reason.txt")):
            n += 1
            dst = corrupt / f"{base}.{n}"
        self.ops.rename(path, dst)
        note = f"{reason}\nfrom: {path}\nat: {utcnow().isoformat()}\n"
        tmp = self.write_tmp(note.encode("utf-8", "replace"), "reason")
        try:
            self.ops.link(tmp, dst.with_name(dst.name + ".reason.txt"))
        finally:
            self.ops.unlink_quiet(tmp)
        self.sync_dir(corrupt)
        return dst

    def sync_claims(self) -> None:
        """Make claim renames durable, so attempts are counted even across a
        power loss (invariant 7: a job that brings its host down must still
        stop).

        Only running/ is synced: if the removal from pending/ is lost, both
        copies carry the same revision, and leftovers.resolve_duplicates keeps
        the running one (see states.PRECEDENCE).
        """
        self.sync_dir(self._dir_strs[Status.RUNNING])

    def iter_all(self) -> Iterator[tuple[Status, str]]:
        for status in Status:
            for name in self.names(status):
                yield status, name


def age_seconds(when: datetime | None) -> float | None:
    if when is None:
        return None
    return max(0.0, (utcnow() - when).total_seconds())
