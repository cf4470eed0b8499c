"""The heartbeat file ``runners/<runner-id>.json``: its one schema, encoder and decoder.

Owns the format every reader shares: the runner judging liveness and
recovering a dead runner's jobs, ``jobspool status`` and the dashboard. A
heartbeat says who the runner is (id, host, pid and the pid's start time),
when it started, a ``beat`` counter it raises at every refresh, its wall
clock at that refresh, and the attempts it is running (:class:`BeatJob`).

Invariants kept here:

* What :func:`encode` writes for the values a runner makes (ids taken from
  claim names, timezone-aware times, at most the 256 workers a config
  allows), :func:`decode` accepts: bounds are generous on that side, so a
  live runner's own file is never refused.
* :func:`decode` is strict and bounded: a size cap, strict JSON, exactly the
  known fields, integers in range (never a bool), finite floats, bounded
  printable strings, ISO times that carry a time zone, at most
  :data:`MAX_JOBS` attempts. Anything else raises :class:`MalformedHeartbeat`
  with the reason, so every value handed on is safe to compare and subtract.
* Reading ``runners/`` (:func:`scan`) opens without following links and
  without blocking (a FIFO, a symlink, a directory planted there is reported,
  never followed or waited on), reads at most :data:`MAX_BYTES`, and never
  raises for what it finds. A file that is not a valid heartbeat is reported
  in :attr:`Scan.malformed` with its reason: it proves nothing about its
  runner, neither life nor death, and nothing is ever done to the processes
  it names.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobspool import codec
from jobspool.errors import InvalidJobFile, JobspoolError
from jobspool.fsops import NotRegularFile
from jobspool.model import aware_time, is_valid_id

if TYPE_CHECKING:
    from jobspool.spool import Spool

SUFFIX = ".json"
MAX_BYTES = 1 << 20
# Four times the most workers a config allows: one runner never runs more.
MAX_JOBS = 1024
MAX_TEXT = 255
MAX_NAME = 256
MAX_TIME_TEXT = 64
MAX_PID = 2**32 - 1  # Windows pids are DWORDs; Linux stays far below
MAX_COUNT = 2**63 - 1
MAX_ATTEMPT = 2**31 - 1
# A process start time in seconds since the epoch: far beyond any real one.
MAX_EPOCH = 1e11

_FIELDS = frozenset({"runner", "host", "pid", "pid_created", "started_at", "beat", "wall", "jobs"})
_JOB_FIELDS = frozenset({"id", "attempt", "pid", "pid_created", "started_at", "name"})

FileStamp = tuple[int, int, int]


class MalformedHeartbeat(JobspoolError):
    """Bytes in runners/ that are not a heartbeat this version can trust."""


@dataclass(frozen=True)
class BeatJob:
    """One attempt a runner reports running."""

    id: str
    attempt: int
    pid: int | None  # None until the attempt's process is known
    pid_created: float | None  # the pid's start time, when it could be read
    started_at: datetime
    name: str  # "Job.method"


@dataclass(frozen=True)
class Heartbeat:
    runner: str
    host: str
    pid: int
    pid_created: float | None
    started_at: datetime
    beat: int
    wall: datetime  # the writer's own clock: shown to people, never compared for liveness
    jobs: tuple[BeatJob, ...] = ()

    @property
    def signature(self) -> tuple[int, int]:
        """What changes at every refresh of a live runner (a new process beats from 1)."""
        return (self.beat, self.pid)

    def attempt(self, job_id: str, number: int) -> BeatJob | None:
        """The attempt this heartbeat lists for job_id, if it lists it."""
        for job in self.jobs:
            if job.id == job_id and job.attempt == number:
                return job
        return None


@dataclass(frozen=True)
class Malformed:
    """A file in runners/ that is not a valid heartbeat."""

    reason: str
    # (inode, size, mtime) of what was found, None if it vanished: lets a
    # caller tell a file that keeps changing from one that stands still.
    stamp: FileStamp | None


@dataclass(frozen=True)
class Scan:
    """What runners/ holds, by runner id (the file name without ``.json``)."""

    beats: dict[str, Heartbeat]
    malformed: dict[str, Malformed]


# ------------------------------------------------------------------ encoding


def _job_body(job: BeatJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "attempt": job.attempt,
        "pid": job.pid,
        "pid_created": job.pid_created,
        "started_at": job.started_at.isoformat(),
        "name": job.name,
    }


def encode(beat: Heartbeat) -> bytes:
    """The file's bytes (compact JSON; the writer may pad it with spaces)."""
    return codec.json_bytes(
        {
            "runner": beat.runner,
            "host": beat.host,
            "pid": beat.pid,
            "pid_created": beat.pid_created,
            "started_at": beat.started_at.isoformat(),
            "beat": beat.beat,
            "wall": beat.wall.isoformat(),
            "jobs": [_job_body(job) for job in beat.jobs],
        }
    )


# ------------------------------------------------------------------ decoding


def _fields(value: object, what: str, names: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedHeartbeat(f"{what} is not a JSON object")
    missing = names - value.keys()
    if missing:
        raise MalformedHeartbeat(f"{what} lacks {', '.join(sorted(missing))}")
    if len(value) != len(names):
        extra = sorted(value.keys() - names)[0]
        raise MalformedHeartbeat(f"{what} has an unknown field {extra[:40]!r}")
    return value


def _int(value: object, what: str, low: int, high: int) -> int:
    if type(value) is not int:  # a bool is an int to Python, never here
        raise MalformedHeartbeat(f"{what} is not an integer")
    if not low <= value <= high:
        raise MalformedHeartbeat(f"{what} is out of range")
    return value


def _pid(value: object, what: str) -> int | None:
    return None if value is None else _int(value, what, 1, MAX_PID)


def _created(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedHeartbeat(f"{what} is not a number")
    # Range first: float() of a 400-digit integer overflows.
    if not (0 <= value <= MAX_EPOCH and math.isfinite(value)):
        raise MalformedHeartbeat(f"{what} is out of range")
    return float(value)


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise MalformedHeartbeat(f"{what} is not a string")
    if not 0 < len(value) <= limit or not value.isprintable():
        raise MalformedHeartbeat(f"{what} is empty, longer than {limit}, or not printable")
    return value


def _time(value: object, what: str) -> datetime:
    try:
        return aware_time(_text(value, what, MAX_TIME_TEXT))
    except ValueError as exc:
        raise MalformedHeartbeat(f"{what} {exc}") from None


def _job(value: object, n: int) -> BeatJob:
    what = f"jobs[{n}]"
    body = _fields(value, what, _JOB_FIELDS)
    job_id = _text(body["id"], f"{what}.id", MAX_TEXT)
    if not is_valid_id(job_id):
        raise MalformedHeartbeat(f"{what}.id is not a job id")
    return BeatJob(
        id=job_id,
        attempt=_int(body["attempt"], f"{what}.attempt", 0, MAX_ATTEMPT),
        pid=_pid(body["pid"], f"{what}.pid"),
        pid_created=_created(body["pid_created"], f"{what}.pid_created"),
        started_at=_time(body["started_at"], f"{what}.started_at"),
        name=_text(body["name"], f"{what}.name", MAX_NAME),
    )


def decode(data: bytes) -> Heartbeat:
    """One heartbeat from its file's bytes, or MalformedHeartbeat saying why not."""
    if len(data) > MAX_BYTES:
        raise MalformedHeartbeat(f"larger than the {MAX_BYTES}-byte cap")
    try:
        value = codec.parse_json(data)
    except InvalidJobFile as exc:
        raise MalformedHeartbeat(str(exc)) from None
    body = _fields(value, "heartbeat", _FIELDS)
    runner = _text(body["runner"], "runner", MAX_TEXT)
    if not is_valid_id(runner):
        raise MalformedHeartbeat("runner is not a runner id")
    jobs = body["jobs"]
    if not isinstance(jobs, list):
        raise MalformedHeartbeat("jobs is not a list")
    if len(jobs) > MAX_JOBS:
        raise MalformedHeartbeat(f"jobs lists more than {MAX_JOBS} attempts")
    pid = _pid(body["pid"], "pid")
    if pid is None:
        raise MalformedHeartbeat("pid is missing")
    return Heartbeat(
        runner=runner,
        host=_text(body["host"], "host", MAX_TEXT),
        pid=pid,
        pid_created=_created(body["pid_created"], "pid_created"),
        started_at=_time(body["started_at"], "started_at"),
        beat=_int(body["beat"], "beat", 0, MAX_COUNT),
        wall=_time(body["wall"], "wall"),
        jobs=tuple(_job(job, n) for n, job in enumerate(jobs)),
    )


# ------------------------------------------------------------------ reading


def _stamp(path: str) -> FileStamp | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _read(spool: Spool, path: str, runner: str) -> Heartbeat | str | None:
    """The heartbeat at path, the reason it is not one, or None if it is gone."""
    try:
        data, _st = spool.ops.read_regular_stat(path, MAX_BYTES)
    except FileNotFoundError:
        return None  # its runner stopped between our listing and our read
    except NotRegularFile:
        return "not a regular file"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    try:
        beat = decode(data)
    except MalformedHeartbeat as exc:
        return str(exc)
    if beat.runner != runner:
        return "runner does not match the file name"
    return beat


def scan(spool: Spool) -> Scan:
    """Every heartbeat in runners/, and every file there that is not one."""
    folder = spool.dir("runners")
    try:
        names = spool.ops.scandir_names(folder)
    except OSError:  # no runners/ yet, or not a directory: nobody registered
        names = []
    beats: dict[str, Heartbeat] = {}
    malformed: dict[str, Malformed] = {}
    for name in names:
        if not name.endswith(SUFFIX) or name.startswith("."):
            continue  # locks, and a writer's temporary names
        runner = name[: -len(SUFFIX)]
        path = os.path.join(folder, name)
        found = _read(spool, path, runner)
        if isinstance(found, Heartbeat):
            beats[runner] = found
        elif found is not None:
            malformed[runner] = Malformed(found, _stamp(path))
    return Scan(beats, malformed)


def read_heartbeats(spool: Spool) -> dict[str, Heartbeat]:
    """Valid heartbeats by runner id (``scan`` also says which files were not)."""
    return scan(spool).beats
