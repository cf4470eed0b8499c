"""Runner heartbeats, liveness, and taking over a dead runner's jobs.

Each runner holds ``runners/<id>.lock`` locked (portalocker) for its whole
life and rewrites ``runners/<id>.json`` every heartbeat with a rising
``beat`` counter and the pids of its attempts.

Another runner judges it dead when either
* it is on the same host, its lock is free, the process its heartbeat
  names (pid matched by start time) is gone, and its heartbeat did not
  change since the observer's previous look: a free lock alone is no proof,
  since the file at the lock's name can be replaced under a live runner; or
* its heartbeat has not changed for ``lease_seconds``, measured on the
  observer's own monotonic clock from the moment the observer last saw it
  change: that lease is the final word. Wall clocks of other hosts are
  never compared, so clock skew cannot make a live runner look dead.

The owner keeps its own names: see :class:`Lease` for what it does about a
lock file replaced under it, or a heartbeat name taken by something else.

Taking over is a claim by rename of each of the dead runner's running files
to a name carrying the observer's own id: the rename that succeeds owns the
job, so no job is recovered twice. Visible orphan processes are killed
first (same host, pid matched by create time). The daemon then records the
attempt as lost and lets the retry decision send the job on.

Heartbeat files are read and written through :mod:`jobspool.heartbeats`
only. A file there that is not a valid heartbeat proves nothing: its runner
is judged as one with no heartbeat (by the lease alone, never by a lock),
except that a file that keeps changing counts as beating, and no process it
names is ever killed. Such files are logged once each, when first seen. A
lock that is not a regular file (a FIFO, a link, a directory) is never
opened for real and proves nothing either: the lease decides.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import portalocker

from jobspool import heartbeats, logs, provenance
from jobspool.executor import create_time
from jobspool.heartbeats import BeatJob, Heartbeat, Malformed
from jobspool.model import utcnow
from jobspool.names import FINISHING, RunningName, hostname
from jobspool.spool import Spool

HEARTBEAT = heartbeats.SUFFIX
LOCK = ".lock"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
# Process start times are whole clock ticks shown through the boot time,
# which NTP may nudge (as in provenance).
START_TOLERANCE = 1.0


class Lease:
    """This runner's own registration: its lock and its heartbeat file.

    What stands at those names is not trusted, and nothing found there may
    crash the runner or make it follow a link or wait on a FIFO:

    * the heartbeat is written to a new file under an unguessable name,
      created exclusively, then renamed over its name; a directory in the
      way is moved to corrupt/ and the rename tried again;
    * at every beat the file at the lock's name is compared with the one
      locked (fstat of our descriptor against lstat of the name); when it
      is another file, or none, a new file is locked and renamed into place,
      so the name is never left without a held lock once we notice;
    * :meth:`release` never raises.
    """

    def __init__(self, spool: Spool, runner_id: str) -> None:
        self.spool = spool
        self.runner_id = runner_id
        self.host = hostname()
        self.pid = os.getpid()
        self._pid_created: float | None = None
        self.beat_count = 0
        self._lock_fh: IO[bytes] | None = None
        self._lock_trouble: str | None = None  # the last failure to take the lock back
        self.started_at = utcnow()

    @property
    def heartbeat_path(self) -> Path:
        return self.spool.dir("runners") / f"{self.runner_id}{HEARTBEAT}"

    @property
    def lock_path(self) -> Path:
        return self.spool.dir("runners") / f"{self.runner_id}{LOCK}"

    def _tmp_path(self, what: str) -> Path:
        """A name in runners/ nobody can plant anything at beforehand (a dot
        name: readers of runners/ skip it)."""
        token = secrets.token_hex(8)
        return self.spool.dir("runners") / f".{self.runner_id}.{what}.{token}.tmp"

    def acquire(self) -> None:
        flags = os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_NONBLOCK
        fh = _locked(os.open(self.lock_path, flags, 0o644))
        self._lock_fh = fh
        self.beat([])

    def _created(self) -> float | None:
        """This process's start time, looked up once (it cannot change)."""
        if self._pid_created is None:
            self._pid_created = create_time(self.pid)
        return self._pid_created

    def beat(self, jobs: Sequence[BeatJob]) -> None:
        """Write our heartbeat; OSError when it could not be written at all."""
        self.beat_count += 1
        self._keep_lock()
        body = Heartbeat(
            runner=self.runner_id,
            host=self.host,
            pid=self.pid,
            pid_created=self._created(),
            started_at=self.started_at,
            beat=self.beat_count,
            wall=utcnow(),
            jobs=tuple(jobs),
        )
        data = heartbeats.encode(body)
        data += b" " * (-len(data) % 4096)  # room to rewrite in place on a full disk
        tmp = self._tmp_path("beat")
        try:
            _write_new(tmp, data)
        except OSError:
            self._beat_in_place(data)
            return
        try:
            self._put_in_place(tmp, self.heartbeat_path, "heartbeat")
        except OSError:
            self.spool.ops.unlink_quiet(tmp)
            raise

    def _beat_in_place(self, data: bytes) -> None:
        """On a full disk a new file cannot be made, but the old one can be
        overwritten: keep beating so others do not take us for dead.

        Padded to the old size with spaces (valid JSON whitespace), so no new
        block is needed; a reader that catches it half-written skips one beat.
        Only a regular file is written to: never through a link or into a FIFO.
        """
        fd = os.open(self.heartbeat_path, os.O_WRONLY | _O_NOFOLLOW | _O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "heartbeat is not a regular file")
            if len(data) > st.st_size:
                raise OSError(errno.ENOSPC, "heartbeat grew; no room to rewrite it in place")
            os.pwrite(fd, data + b" " * (st.st_size - len(data)), 0)
        finally:
            os.close(fd)

    def _put_in_place(self, src: Path, dst: Path, what: str) -> None:
        """Rename src over dst; a directory in the way goes to corrupt/ first."""
        try:
            os.replace(src, dst)
            return
        except OSError:
            if not self._move_aside(dst, what):
                raise
        os.replace(src, dst)

    def _move_aside(self, path: Path, what: str) -> bool:
        """Quarantine what is at one of our names, unless it is a plain file
        (a rename replaces that). True if something was moved."""
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if stat.S_ISREG(st.st_mode):
            return False
        reason = f"found in place of runner {self.runner_id}'s {what}"
        dst = self.spool.quarantine(path, reason)
        logs.event(
            "corrupt", logs.ERROR, file=f"runners/{path.name}", moved_to=dst.name, reason=reason
        )
        return True

    def _keep_lock(self) -> None:
        """Is the file at the lock's name still the one we hold? If not, lock
        a new one and rename it into place (a rename: the name never lacks a
        held lock). A failure is logged once; the heartbeat is written anyway."""
        found = self._lock_lost()
        if found is None:
            return
        try:
            fh = self._new_lock()
        except (OSError, portalocker.LockException) as exc:
            if self._lock_trouble != str(exc):
                logs.event("lock_error", logs.ERROR, runner=self.runner_id, error=exc)
            self._lock_trouble = str(exc)
            return
        old, self._lock_fh = self._lock_fh, fh
        if old is not None:
            old.close()
        self._lock_trouble = None
        logs.event("lock_replaced", logs.WARNING, runner=self.runner_id, found=found)

    def _lock_lost(self) -> str | None:
        """What is at the lock's name, if it is not the file we hold."""
        if self._lock_fh is None:
            return None
        held = os.fstat(self._lock_fh.fileno())
        try:
            there = os.lstat(self.lock_path)
        except FileNotFoundError:
            return "nothing"
        if (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino):
            return None
        return f"{_kind(there)} of {there.st_size} bytes"

    def _new_lock(self) -> IO[bytes]:
        """A new lock file, locked, then renamed over the lock's name."""
        tmp = self._tmp_path("lock")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o644)
        try:
            fh = _locked(fd)
            try:
                self._put_in_place(tmp, self.lock_path, "lock")
            except BaseException:
                fh.close()
                raise
        except BaseException:
            self.spool.ops.unlink_quiet(tmp)
            raise
        return fh

    def release(self) -> None:
        """Unregister: remove our heartbeat and lock. Never raises: what stands
        at our names may not be ours (anything but a plain file goes to corrupt/)."""
        self._remove(self.heartbeat_path, "heartbeat")
        if self._lock_fh is not None:
            with contextlib.suppress(Exception):
                portalocker.unlock(self._lock_fh)
            self._lock_fh.close()
            self._lock_fh = None
        self._remove(self.lock_path, "lock")

    def _remove(self, path: Path, what: str) -> None:
        try:
            if not self._move_aside(path, what):
                self.spool.ops.unlink_quiet(path)
        except OSError as exc:
            logs.event(
                "release_error", logs.ERROR, runner=self.runner_id, file=path.name, error=exc
            )


def _write_new(path: Path, data: bytes) -> None:
    """Create path exclusively (never through a link) and write all of data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def _locked(fd: int) -> IO[bytes]:
    """The regular file open at fd, locked for us; OSError if it is anything else."""
    fh = os.fdopen(fd, "r+b")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "lock is not a regular file")
        portalocker.lock(fh, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
    except BaseException:
        fh.close()
        raise
    return fh


def _tmp_of(runner: str, name: str) -> bool:
    """Is name one of the temporary files runner's Lease writes (see _tmp_path)?"""
    return name.startswith(f".{runner}.") and name.endswith(".tmp")


def _kind(st: os.stat_result) -> str:
    if stat.S_ISREG(st.st_mode):
        return "a file"
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    if stat.S_ISLNK(st.st_mode):
        return "a link"
    return "a special file"


# What must change for a runner to count as beating: its heartbeat's
# counter, or, for a file that is not a valid heartbeat, the file itself.
Signature = tuple[int, int] | tuple[str, object] | None


@dataclass
class _Seen:
    signature: Signature
    since: float


def lock_is_free(path: Path) -> bool:
    """True when no process holds the runner's lock (same host only).

    A lock that is not a regular file is not opened for locking (a FIFO would
    block, a link would be followed) and counts as held: it proves no death.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return False
    with os.fdopen(fd) as fh:  # read-only: never creates a lock file
        try:
            portalocker.lock(
                fh, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
            )
        except portalocker.LockException:
            return False
        portalocker.unlock(fh)
        return True


def runner_alive(pid: int, created: float | None) -> bool:
    """Does the process a heartbeat names still run here (same start time)?

    In doubt (it cannot be looked at) it counts as alive: that only leaves
    the verdict to the lease.
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > START_TOLERANCE:
            return False  # its pid now belongs to another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


class Liveness:
    """Judges other runners alive or dead from what this runner observes."""

    def __init__(self, spool: Spool, me: str, lease_seconds: float) -> None:
        self.spool = spool
        self.me = me
        self.lease = lease_seconds
        self.host = hostname()
        self._seen: dict[str, _Seen] = {}
        self._reported: set[str] = set()

    def _observe(self, runner: str, signature: Signature, now: float) -> float:
        seen = self._seen.get(runner)
        if seen is None or seen.signature != signature:
            self._seen[runner] = seen = _Seen(signature, now)
        return now - seen.since

    def _report(self, malformed: dict[str, Malformed]) -> None:
        """Log each malformed file once, when it is first seen so."""
        for runner in sorted(set(malformed) - self._reported):
            logs.event(
                "heartbeat_malformed",
                logs.WARNING,
                file=f"runners/{runner}{HEARTBEAT}",
                reason=malformed[runner].reason,
            )
        self._reported = set(malformed)

    def dead(self, now: float, owners: set[str]) -> dict[str, Heartbeat | None]:
        """Runners (among heartbeat files and running-file owners) judged dead.

        Returns their last heartbeat: None when they left none that can be
        read, and then nothing may be taken from it (no pid to kill).
        """
        found = heartbeats.scan(self.spool)
        self._report(found.malformed)
        dead: dict[str, Heartbeat | None] = {}
        for runner in (set(found.beats) | owners) - {self.me}:
            beat = found.beats.get(runner)
            signature: Signature = None
            if beat is not None:
                signature = beat.signature
            elif runner in found.malformed:
                signature = ("malformed", found.malformed[runner].stamp)
            seen = self._seen.get(runner)
            changed = seen is not None and seen.signature != signature
            lapsed = self._observe(runner, signature, now) >= self.lease
            if lapsed or (beat is not None and not changed and self._gone(runner, beat)):
                dead[runner] = beat
        for gone in set(self._seen) - set(found.beats) - owners:
            del self._seen[gone]
        return dead | _finishing_of(dead, owners)

    def _gone(self, runner: str, beat: Heartbeat) -> bool:
        """Does this host prove the runner gone: its lock free, and the
        process its heartbeat names (pid and start time) no longer running?

        A free lock alone proves nothing: the file at the lock's name may
        have been replaced under a live runner, which takes it back at its
        next beat."""
        if beat.host != self.host:
            return False
        lock = self.spool.dir("runners") / f"{runner}{LOCK}"
        return lock_is_free(lock) and not runner_alive(beat.pid, beat.pid_created)

    def forget(self, runner: str) -> None:
        self._seen.pop(runner, None)
        folder = self.spool.dir("runners")
        names = [f"{runner}{HEARTBEAT}", f"{runner}{LOCK}"]
        with contextlib.suppress(OSError):
            # The temporary files it was writing when it died.
            names += [n for n in self.spool.ops.scandir_names(folder) if _tmp_of(runner, n)]
        for name in names:
            # A directory planted under that name stays where it is.
            with contextlib.suppress(OSError):
                self.spool.ops.unlink_quiet(folder / name)


def _finishing_of(dead: dict[str, Heartbeat | None], owners: set[str]) -> dict[str, None]:
    """The finishing claims of runners judged dead: dead with them.

    Only runner R renames its own claims to ``R-finishing`` (the fence), and
    such a name never beats; without this, a claim left at that name by a
    crash in the middle of a publication would wait a whole lease after R
    was proven gone. No heartbeat goes with it: R's attempt processes are
    R's to answer for."""
    return {
        owner: None
        for owner in owners
        if owner.endswith(FINISHING) and owner[: -len(FINISHING)] in dead and owner not in dead
    }


def kill_orphans(beat: Heartbeat | None) -> list[int]:
    """Kill a dead runner's attempt processes, if they run on this host.

    A heartbeat is only a file: each process it names, and each one its
    attempt left behind, is killed only once ``provenance`` proves it is
    that runner's attempt (or was started by it). An attempt listed without
    its start time cannot be proven, and None (no heartbeat that could be
    read) names no process: nothing is killed for them.
    """
    if beat is None or beat.host != hostname():
        return []
    killed: list[int] = []
    for job in beat.jobs:
        if job.pid is None or job.pid_created is None:
            continue
        token = RunningName(job.id, beat.runner, job.attempt).filename[: -len(".json")]
        attempt = provenance.Attempt(job.pid, job.pid_created, job.pid_created, token, beat.pid)
        killed += provenance.kill_proven(attempt)
    return killed


def take_over(spool: Spool, dead_runner: str, me: str) -> list[tuple[RunningName, Path]]:
    """Claim every running file of dead_runner by rename; returns what we won."""
    won = []
    for claim, path in spool.running_entries():
        if claim.runner != dead_runner:
            continue
        mine = RunningName(claim.job_id, me, claim.attempt)
        dst = spool.dir("running") / mine.filename
        try:
            spool.ops.rename(path, dst)
        except FileNotFoundError:
            continue  # another runner recovered it first
        won.append((claim, dst))
    return won
