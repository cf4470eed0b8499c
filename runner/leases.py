"""Runner heartbeats, liveness, and taking over a dead runner's jobs.

Each runner holds ``runners/<id>.lock`` locked (portalocker) for its whole
life and rewrites ``runners/<id>.json`` every heartbeat with a rising
``beat`` counter and the pids of its attempts.

Another runner judges it dead when either
* it is on the same host and its lock is free (the process is gone), or
* its heartbeat has not changed for ``lease_seconds``, measured on the
  observer's own monotonic clock from the moment the observer last saw it
  change. Wall clocks of other hosts are never compared, so clock skew
  cannot make a live runner look dead.

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
import os
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
from jobspool.names import RunningName, hostname
from jobspool.spool import Spool

HEARTBEAT = heartbeats.SUFFIX
LOCK = ".lock"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class Lease:
    """This runner's own registration."""

    def __init__(self, spool: Spool, runner_id: str) -> None:
        self.spool = spool
        self.runner_id = runner_id
        self.host = hostname()
        self.pid = os.getpid()
        self._pid_created: float | None = None
        self.beat_count = 0
        self._lock_fh: IO[str] | None = None
        self.started_at = utcnow()

    @property
    def heartbeat_path(self) -> Path:
        return self.spool.dir("runners") / f"{self.runner_id}{HEARTBEAT}"

    @property
    def lock_path(self) -> Path:
        return self.spool.dir("runners") / f"{self.runner_id}{LOCK}"

    def acquire(self) -> None:
        fh = open(self.lock_path, "a")  # noqa: SIM115 - held for the runner's life
        portalocker.lock(fh, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        self._lock_fh = fh
        self.beat([])

    def _created(self) -> float | None:
        """This process's start time, looked up once (it cannot change)."""
        if self._pid_created is None:
            self._pid_created = create_time(self.pid)
        return self._pid_created

    def beat(self, jobs: Sequence[BeatJob]) -> None:
        self.beat_count += 1
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
        tmp = self.heartbeat_path.with_name(f".{self.runner_id}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.heartbeat_path)
        except OSError:
            self.spool.ops.unlink_quiet(tmp)
            self._beat_in_place(data)

    def _beat_in_place(self, data: bytes) -> None:
        """On a full disk a new file cannot be made, but the old one can be
        overwritten: keep beating so others do not take us for dead.

        Padded to the old size with spaces (valid JSON whitespace), so no new
        block is needed; a reader that catches it half-written skips one beat.
        """
        fd = os.open(self.heartbeat_path, os.O_WRONLY)
        try:
            size = os.fstat(fd).st_size
            if len(data) > size:
                raise OSError(28, "heartbeat grew; no room to rewrite it in place")
            os.pwrite(fd, data + b" " * (size - len(data)), 0)
        finally:
            os.close(fd)

    def release(self) -> None:
        self.spool.ops.unlink_quiet(self.heartbeat_path)
        if self._lock_fh is not None:
            with contextlib.suppress(Exception):
                portalocker.unlock(self._lock_fh)
            self._lock_fh.close()
            self._lock_fh = None
        self.spool.ops.unlink_quiet(self.lock_path)


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
                lock = self.spool.dir("runners") / f"{runner}{LOCK}"
                if beat.host == self.host and lock_is_free(lock):
                    dead[runner] = beat
                    continue
                signature = beat.signature
            elif runner in found.malformed:
                signature = ("malformed", found.malformed[runner].stamp)
            if self._observe(runner, signature, now) >= self.lease:
                dead[runner] = beat
        for gone in set(self._seen) - set(found.beats) - owners:
            del self._seen[gone]
        return dead

    def forget(self, runner: str) -> None:
        self._seen.pop(runner, None)
        for suffix in (HEARTBEAT, LOCK):
            # A directory planted under that name stays where it is.
            with contextlib.suppress(OSError):
                self.spool.ops.unlink_quiet(self.spool.dir("runners") / f"{runner}{suffix}")


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
