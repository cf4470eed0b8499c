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
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import portalocker

from jobspool import codec
from jobspool.errors import InvalidJobFile
from jobspool.executor import create_time, kill_group_of, kill_tree, process_alive
from jobspool.model import utcnow
from jobspool.names import RunningName, hostname
from jobspool.spool import Spool

HEARTBEAT = ".json"
LOCK = ".lock"


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
        self.started_at = utcnow().isoformat()

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

    def beat(self, jobs: list[dict[str, Any]]) -> None:
        self.beat_count += 1
        body = {
            "runner": self.runner_id,
            "host": self.host,
            "pid": self.pid,
            "pid_created": self._created(),
            "started_at": self.started_at,
            "beat": self.beat_count,
            "wall": utcnow().isoformat(),
            "jobs": jobs,
        }
        data = codec.json_bytes(body)
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


@dataclass
class _Seen:
    signature: Any
    since: float


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    try:
        data = codec.parse_json(path.read_bytes())
    except (OSError, InvalidJobFile):
        return None
    return data if isinstance(data, dict) else None


def lock_is_free(path: Path) -> bool:
    """True when no process holds the runner's lock (same host only)."""
    try:
        fh = open(path)  # noqa: SIM115 - read-only: never creates a lock file
    except OSError:
        return True
    with fh:
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

    def _observe(self, runner: str, signature: Any, now: float) -> float:
        seen = self._seen.get(runner)
        if seen is None or seen.signature != signature:
            self._seen[runner] = seen = _Seen(signature, now)
        return now - seen.since

    def runners(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name in self.spool.ops.scandir_names(self.spool.dir("runners")):
            if name.endswith(HEARTBEAT) and not name.startswith("."):
                beat = read_heartbeat(self.spool.dir("runners") / name)
                if beat is not None:
                    out[name[: -len(HEARTBEAT)]] = beat
        return out

    def dead(self, now: float, owners: set[str]) -> dict[str, dict[str, Any]]:
        """Runners (among heartbeat files and running-file owners) judged dead.

        Returns their last heartbeat (empty when they never wrote one).
        """
        beats = self.runners()
        dead: dict[str, dict[str, Any]] = {}
        for runner in set(beats) | owners:
            if runner == self.me:
                continue
            beat = beats.get(runner, {})
            lock = self.spool.dir("runners") / f"{runner}{LOCK}"
            if beat.get("host") == self.host and lock_is_free(lock):
                dead[runner] = beat
                continue
            silent = self._observe(runner, (beat.get("beat"), beat.get("pid")), now)
            if silent >= self.lease:
                dead[runner] = beat
        for gone in set(self._seen) - set(beats) - owners:
            del self._seen[gone]
        return dead

    def forget(self, runner: str) -> None:
        self._seen.pop(runner, None)
        for suffix in (HEARTBEAT, LOCK):
            self.spool.ops.unlink_quiet(self.spool.dir("runners") / f"{runner}{suffix}")


def kill_orphans(beat: dict[str, Any]) -> list[int]:
    """Kill a dead runner's attempt processes, if they run on this host."""
    if beat.get("host") != hostname():
        return []
    killed: list[int] = []
    for job in beat.get("jobs", []):
        pid, created = job.get("pid"), job.get("pid_created")
        if not isinstance(pid, int):
            continue
        if process_alive(pid, created):
            killed += kill_tree(pid)
        else:  # the attempt ended, but what it started may live on in its group
            killed += kill_group_of(pid, created)
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
