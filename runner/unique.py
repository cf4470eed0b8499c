"""Unique jobs, the locks: one file per key in ``spool/unique/``.

Owns the lock files: taking one before a job is published
(:func:`submit`), judging one found there (:func:`judge`), taking over a
stale one, releasing one at the transition that ends its window
(:func:`release`, called by the stages and actions that move jobs), and the
periodic repair of locks whose release was lost (:func:`sweep`). The rules
themselves (templates, windows, :func:`~jobspool.uniquekey.releases`,
:func:`~jobspool.uniquekey.holds`) are :mod:`jobspool.uniquekey`'s.

A lock is ``unique/<sha256 of the key, 40 hex>.json`` holding the key, the
job id, the window (until, for), when it was created and when it expires,
and who wrote it. It is written to tmp/ (fsynced), then linked under its
name, which fails if the name exists (no replace), then unique/ is synced:
taking a key is that one link, so of any number of submitters exactly one
gets it. The job is published only after that.

Crash reasoning:

- Submitter dies after the lock, before its job is published: the lock
  names a job that is in no status. Anyone judging it (the next submitter
  with the key, a runner's sweep) finds that, and once the lock is older
  than the grace (``unique_grace_seconds``, longer than any publish takes)
  it is stale and taken over. Within the grace it counts as held: the job
  may be on its way.
- Take-over (and release) never unlinks a name it judged: the name is
  renamed to a fresh name in tmp/ first, and the file that arrived there is
  compared (device, inode, size, mtime) with the one judged. Of two racers,
  one rename moves the stale file; the other either finds nothing, or moves
  the first one's new lock, sees it is not what it judged, and links it
  back without replacing. Then each creates anew with the no-replace link,
  so exactly one new job is published.
- A finished job whose runner died before releasing: the lock names a job
  outside its window; judged stale at once (the sweep, the next submitter).
  A job deleted by hand: in no status, stale after the grace.
- A lost reply on a network filesystem (link done, EEXIST reported): the
  file at the name is our own inode, which we recognise.
- Power loss: a lock is durable before its job is; a job without its lock
  (the link's directory sync lost) only loses the deduplication for it.

Nothing read from unique/ is trusted: it is read without following links,
size-capped and validated; anything that is not a lock for its own name is
stale at once and moved to corrupt/ with the reason (nothing deleted); a
lock counts only until min(its expiry, created + for), and a creation time
more than :data:`MAX_AHEAD` ahead of this host's clock is refused, so no
file makes a key stuck for longer than its window.

Clocks: expiry and the grace are judged from the time recorded in the
lock, against the judging host's clock; a host whose clock is behind the
writer's sees a lock expire later by the skew, one ahead sees it expire
sooner. ``for`` is a bound of last resort (releases are by transition), so
keep it well above the skew between hosts, and the grace too.

Hand-dropped job files take no lock: uniqueness is a submitter's promise,
made by ``run_background_job``, ``runjob``, the dashboard and its API.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobspool import codec
from jobspool.errors import Conflict, InvalidJobFile, SpoolError
from jobspool.fsops import NotRegularFile
from jobspool.model import Job, Unique, UtcDatetime, is_valid_id, utcnow
from jobspool.names import hostname
from jobspool.spool import FileIdentity, Spool, identity
from jobspool.states import Status
from jobspool.uniquekey import MAX_KEY, Until, holds, releases

DIR = "unique"
SUFFIX = ".json"
MAX_LOCK_BYTES = 4096
MAX_AHEAD = timedelta(hours=1)
DEFAULT_GRACE = 30.0
# Take-over attempts per submit before the submitter is told to try again.
TRIES = 8
# Locks judged per sweep: the rest wait for the next one.
SWEEP_LIMIT = 2000


class Lock(BaseModel):
    """A lock file's content."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=MAX_KEY)
    job: str
    until: Until
    for_seconds: int = Field(ge=1, le=30 * 86400)
    created: UtcDatetime
    expires: UtcDatetime
    host: str = Field(default="", max_length=255)


class Submitted(str):
    """A job id as a submit returns it. ``existing`` is True when the job's
    unique key was held: nothing was written and the id is the holder's."""

    existing: bool = False

    @classmethod
    def of(cls, job_id: str, *, existing: bool) -> Submitted:
        out = cls(job_id)
        out.existing = existing
        return out


def is_existing(job_id: str) -> bool:
    """Whether a submit's id is that of a job already holding the unique key."""
    return isinstance(job_id, Submitted) and job_id.existing


@dataclass(frozen=True)
class Seen:
    """One entry of unique/ as read: its identity and lock, or why it is none."""

    name: str
    ident: FileIdentity
    lock: Lock | None
    problem: str = ""


@dataclass(frozen=True)
class Verdict:
    held: bool
    why: str


def lock_name(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40] + SUFFIX


def lock_dir(spool: Spool) -> str:
    path = os.path.join(spool.root_str, DIR)
    if os.path.islink(path):
        raise SpoolError(f"{path} is a symbolic link; refusing to use it")
    return path


def _path(spool: Spool, name: str) -> str:
    return os.path.join(lock_dir(spool), name)


# ------------------------------------------------------------------ reading


def read(spool: Spool, name: str) -> Seen | None:
    """The entry called name in unique/, judged as a file; None if absent."""
    path = _path(spool, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return Seen(name, identity(st), None, "not a regular file")
    try:
        data, st = spool.ops.read_regular_stat(path, MAX_LOCK_BYTES)
    except FileNotFoundError:
        return None
    except NotRegularFile:
        return Seen(name, identity(st), None, "not a regular file")
    return Seen(name, identity(st), *_parse(name, data))


def _parse(name: str, data: bytes) -> tuple[Lock | None, str]:
    if len(data) > MAX_LOCK_BYTES:
        return None, f"over {MAX_LOCK_BYTES} bytes"
    try:
        lock = Lock.model_validate(codec.parse_json(data))
    except (InvalidJobFile, ValueError, TypeError, RecursionError) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        return None, f"not a lock: {first[:120]}"
    if not is_valid_id(lock.job):
        return None, "not a lock: its job id is not valid"
    if lock_name(lock.key) != name:
        return None, "not a lock: its key does not match its name"
    return lock, ""


def count(spool: Spool) -> int:
    """Lock files in unique/, from its listing alone."""
    try:
        return len(entries(spool))
    except OSError:
        return 0


def entries(spool: Spool) -> list[str]:
    try:
        names = spool.ops.scandir_names(lock_dir(spool))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.endswith(SUFFIX) and not n.startswith("."))


# ------------------------------------------------------------------ judging


def expiry(lock: Lock) -> datetime:
    """When a lock stops counting, whatever its job does."""
    return min(lock.expires, lock.created + timedelta(seconds=lock.for_seconds))


def judge(spool: Spool, seen: Seen, now: datetime, grace: float) -> Verdict:
    """Whether an entry of unique/ still holds its key, and why."""
    lock = seen.lock
    if lock is None:
        return Verdict(False, seen.problem)
    if lock.created > now + MAX_AHEAD:
        return Verdict(False, "created ahead of this host's clock by more than an hour")
    if now >= expiry(lock):
        return Verdict(False, "expired")
    return _by_job(spool, lock, now, grace)


def _by_job(spool: Spool, lock: Lock, now: datetime, grace: float) -> Verdict:
    """A lock inside its time: whether its job is still inside its window."""
    view = spool.find(lock.job)
    if view is None:
        young = now < lock.created + timedelta(seconds=grace)
        return Verdict(young, "its job is being published" if young else "its job is gone")
    rec = view.record
    if rec.unique is None or rec.unique.key != lock.key:
        return Verdict(False, f"job {lock.job} does not hold this key")
    if not holds(lock.until, Status(view.status), len(rec.attempts)):
        return Verdict(False, f"job {lock.job} is {view.status}, past until={lock.until}")
    return Verdict(True, f"job {lock.job} is {view.status}")


# ------------------------------------------------------------------ taking


def submit(
    spool: Spool, record: Job, publish: Callable[[Job], str], *, grace: float = DEFAULT_GRACE
) -> Submitted:
    """Take the record's key and publish it, or return the id holding it.

    ``record`` carries its id and its filled ``unique``. If publishing
    fails, the lock is removed again (only the very file we made).
    """
    assert record.unique is not None and record.id is not None
    mine = _take(spool, record.unique, record.id, grace)
    if isinstance(mine, str):
        return Submitted.of(mine, existing=True)
    try:
        return Submitted.of(publish(record), existing=False)
    except BaseException:
        seen = read(spool, lock_name(record.unique.key))
        if seen is not None and seen.ident[:2] == mine:
            _remove(spool, seen, "")
        raise


def _take(spool: Spool, unique: Unique, job_id: str, grace: float) -> tuple[int, int] | str:
    """Our lock's (device, inode), or the id of the job holding the key."""
    name = lock_name(unique.key)
    _ensure_dir(spool)
    for _ in range(TRIES):
        now = utcnow()
        mine = _create(spool, name, unique, job_id, now)
        if mine is not None:
            return mine
        seen = read(spool, name)
        if seen is None:
            continue  # released meanwhile: try again
        verdict = judge(spool, seen, now, grace)
        if verdict.held and seen.lock is not None:
            return seen.lock.job
        _remove(spool, seen, verdict.why)
    raise Conflict(f"unique key {unique.key!r} kept changing hands; try again")


def _ensure_dir(spool: Spool) -> None:
    path = lock_dir(spool)
    if not os.path.isdir(path):
        spool.ops.mkdir(path)
        spool.sync_dir(spool.root_str)  # a lock is durable only in a durable unique/


def _create(
    spool: Spool, name: str, unique: Unique, job_id: str, now: datetime
) -> tuple[int, int] | None:
    """Link a new lock under name; its (device, inode), or None if the name is taken."""
    lock = Lock(
        key=unique.key,
        job=job_id,
        until=unique.until,
        for_seconds=unique.for_seconds,
        created=now,
        expires=now + timedelta(seconds=unique.for_seconds),
        host=hostname()[:255],
    )
    tmp = spool.write_tmp(lock.model_dump_json(indent=1).encode() + b"\n", "unique")
    dst = _path(spool, name)
    try:
        st = os.stat(tmp)
        mine = (st.st_dev, st.st_ino)
        try:
            spool.ops.link(tmp, dst)
        except FileExistsError:
            # Over NFS a link that was done can report EEXIST (lost reply):
            # then the name is our very file.
            with contextlib.suppress(OSError):
                there = os.lstat(dst)
                if (there.st_dev, there.st_ino) == mine:
                    spool.sync_dir(lock_dir(spool))
                    return mine
            return None
    finally:
        with contextlib.suppress(OSError):
            spool.ops.unlink_quiet(tmp)
    try:
        spool.sync_dir(lock_dir(spool))
    except BaseException:
        # Not durable, so not taken: the caller publishes nothing, and no
        # lock may be left naming a job that never comes.
        with contextlib.suppress(OSError):
            there = os.lstat(dst)
            if (there.st_dev, there.st_ino) == mine:
                spool.ops.unlink(dst)
        raise
    return mine


def _remove(spool: Spool, seen: Seen, why: str) -> bool:
    """Remove the very entry judged, never another one (see the module's
    docstring): rename it aside, compare, put back what is not it."""
    path = _path(spool, seen.name)
    grave = spool.path_in("tmp", f"unique.{secrets.token_hex(8)}.stale")
    try:
        spool.ops.rename(path, grave)
    except FileNotFoundError:
        return False  # someone else moved it first
    moved = os.lstat(grave)
    if identity(moved) != seen.ident and stat.S_ISREG(moved.st_mode):
        with contextlib.suppress(OSError):
            spool.ops.link(grave, path)  # EEXIST: a newer lock took the name
        spool.ops.unlink_quiet(grave)
        return False
    if seen.lock is None or not stat.S_ISREG(moved.st_mode):
        spool.quarantine(grave, f"unique/{seen.name}: {why or seen.problem}")
    else:
        spool.ops.unlink_quiet(grave)
    with contextlib.suppress(OSError):
        spool.sync_dir(lock_dir(spool))
    return True


# ------------------------------------------------------------------ releasing


def release(spool: Spool, job: Job, to: Status) -> bool:
    """End the job's window if moving to ``to`` ends it: remove its key's
    lock while that lock names this job. True if one was removed.

    Best effort by design: a release lost to a crash or an I/O error is
    repaired by judgment (the sweep, the next submitter)."""
    unique = job.unique
    if unique is None or job.id is None or not releases(unique.until, to):
        return False
    try:
        seen = read(spool, lock_name(unique.key))
        if seen is None or seen.lock is None or seen.lock.job != job.id:
            return False
        return _remove(spool, seen, "")
    except (OSError, SpoolError):
        return False


def holder(spool: Spool, job: Job) -> bool:
    """Whether the job's key is locked under its id right now."""
    if job.unique is None:
        return False
    try:
        seen = read(spool, lock_name(job.unique.key))
    except (OSError, SpoolError):
        return False
    lock = seen.lock if seen is not None else None
    return lock is not None and lock.job == job.id and utcnow() < expiry(lock)


# ------------------------------------------------------------------ listing, repair


def listing(spool: Spool, grace: float) -> list[tuple[Seen, Verdict]]:
    """Every entry of unique/ and its judgment, by key."""
    now = utcnow()
    out = []
    for name in entries(spool)[:SWEEP_LIMIT]:
        with contextlib.suppress(OSError):
            seen = read(spool, name)
            if seen is not None:
                out.append((seen, judge(spool, seen, now, grace)))
    return sorted(out, key=lambda sv: sv[0].lock.key if sv[0].lock else "")


def sweep(spool: Spool, grace: float) -> list[str]:
    """Remove the locks whose window is over (their release was lost);
    what was removed and why."""
    removed = []
    for seen, verdict in listing(spool, grace):
        if verdict.held:
            continue
        with contextlib.suppress(OSError):
            if _remove(spool, seen, verdict.why):
                key = seen.lock.key if seen.lock else seen.name
                removed.append(f"{key}: {verdict.why}")
    return removed


def as_json(seen: Seen, verdict: Verdict) -> dict[str, object]:
    lock = seen.lock
    if lock is None:
        return {"file": seen.name, "held": False, "problem": seen.problem}
    data: dict[str, object] = json.loads(lock.model_dump_json())
    data["expires"] = expiry(lock).isoformat()
    data.update(file=seen.name, held=verdict.held, why=verdict.why)
    return data
