"""The order snapshot of pending/: ``.jobspool.order`` at the spool's root.

A runner started on a backlog must order every pending file before its
first claim; reading 100,000 of them takes a second. It leaves what its
quick look found (:mod:`jobspool.backlog`) in this file, so that the next
start reads one file, lists pending/ and takes one ``lstat`` per name, and
quick-looks only at the files the snapshot cannot vouch for.

Owns the file's format, its writing and the rule by which an entry is
believed. The snapshot is a hint like any quick entry: each job is still
loaded in full, with every check, when it comes up for a claim
(:meth:`jobspool.stages.intake.Intake.take`).

When an entry is believed
-------------------------
An entry says: the file named N in pending/ with inode I, size S, mtime M
and ctime C (nanoseconds) orders as (job, priority, created_at, due,
attempt). It is believed only when ``lstat`` of N in pending/ now finds a
regular file with one link and exactly I, S, M and C. Why that proves the
file is the one that was read:

* a new file under the name (a retry linked back into pending/, a producer's
  rename, even onto a reused inode number) is made or linked after the
  snapshot's file was read, and linking or renaming sets the inode's ctime
  to the time of that change;
* a change to the file in place (a write, a truncate, ``utime``, ``chmod``)
  also sets its ctime, and no program can set a ctime back short of
  setting the system clock back;
* so the same ctime means no change since the read, provided a change after
  the read cannot fall in the same tick of the clock as the change before
  it: an entry is only written for a file whose ctime was at least
  :data:`jobspool.backlog.SETTLED_NS` (2 s) old when it was read, far more
  than a tick (the clock would have to step back by that much, which the
  inode, size and mtime must then match as well);
* the order fields depend on the bytes and, for a sealed record, on the
  spool's key; the snapshot is itself sealed with that key, so it was made
  under the same key, and its own seal also proves a runner wrote it.

Invariants:

1. Read as untrusted input: no link followed, a regular file, at most
   :data:`MAX_BYTES`; a snapshot that is torn, of another format version,
   for another pending/ directory (its device and inode: one written on
   another host of a shared spool sees another device, and is ignored),
   or not sealed with the spool's key is ignored whole, and a line that
   does not parse vouches for nothing. Reading never raises.
2. Written under a fresh name in the spool's root, synced, and renamed over
   the old one: a crash leaves the old snapshot or none, never a torn one.
   Two runners writing at once each rename a whole snapshot; whichever
   lands last is as good as the other, since each entry stands or falls by
   its own file. A write that fails is logged and changes nothing.
3. Nothing in pending/ is written, moved or judged here.
4. What a write keeps: the entries of the last quick look, and the old
   snapshot's lines for files still waiting; a start that found fewer than
   ``QUICK_FROM`` settled files the snapshot lacked does not rewrite it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from jobspool import logs
from jobspool.backlog import QuickEntry, seen_text
from jobspool.errors import InvalidJobFile
from jobspool.fsops import NotRegularFile
from jobspool.ids import is_valid_id
from jobspool.names import JSON
from jobspool.spool import Spool
from jobspool.states import Status

NAME = ".jobspool.order"
VERSION = 1
# 100,000 entries take about 13 MB.
MAX_BYTES = 64 * 2**20
_HEADER = "jobspool pending order"
_CONTEXT = b"jobspool pending order\n"
_MAC_HEX = 64
# Temporary names left by a crash are removed after this long.
TMP_MAX_AGE_SECONDS = 3600.0
_I64 = 2**63

# name -> its line: name, inode, size, mtime_ns, ctime_ns, priority, due,
# attempt, created, job (tab-separated; no field holds a tab or a newline).
Known = dict[str, str]


def path(spool: Spool) -> str:
    return os.path.join(spool.root_str, NAME)


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, _CONTEXT + body, hashlib.sha256).hexdigest().encode()


def _header(spool: Spool) -> str | None:
    """The first line: the format, its version, and which pending/ it is of."""
    try:
        st = os.stat(spool.dir(Status.PENDING), follow_symlinks=False)
    except OSError:
        return None
    return f"{_HEADER} {VERSION} {st.st_dev} {st.st_ino}"


def read(spool: Spool, key: bytes) -> Known:
    """The snapshot's lines by name, or none at all when it cannot be trusted.

    Each line is checked when it is used (:func:`believe`): lines are kept
    as text until then, a third of the memory that parsed fields take."""
    try:
        data = spool.ops.read_regular_stat(path(spool), MAX_BYTES)[0]
    except (OSError, NotRegularFile, InvalidJobFile):
        return {}
    if not _MAC_HEX < len(data) <= MAX_BYTES:
        return {}
    body, mac = data[:-_MAC_HEX], data[-_MAC_HEX:]
    if not hmac.compare_digest(mac, _mac(key, body)):
        return {}
    try:
        lines = body.decode().split("\n")
    except ValueError:
        return {}
    if lines[0] != _header(spool) or lines[-1] != "":
        return {}
    known: Known = {}
    for line in lines[1:-1]:
        name, tab, _rest = line.partition("\t")
        if tab:
            known[name] = line
    return known


def believe(
    directory: str, names: Iterable[str], known: Known
) -> tuple[list[QuickEntry], list[str]]:
    """The quick entries the snapshot vouches for, and the names it does not."""
    if not known:
        return [], list(names)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return [], list(names)
    found: list[QuickEntry] = []
    rest: list[str] = []
    jobs: dict[str, str] = {}  # one string per job name, not one per entry
    try:
        for name in names:
            line = known.get(name)
            entry = None if line is None else _vouched(dir_fd, name, line, jobs)
            if entry is None:
                rest.append(name)
            else:
                found.append(entry)
    finally:
        os.close(dir_fd)
    return found, rest


def _vouched(dir_fd: int, name: str, line: str, jobs: dict[str, str]) -> QuickEntry | None:
    """The entry, if the file now under the name is the one its line describes."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    if st.st_nlink != 1 or not stat.S_ISREG(st.st_mode):
        return None
    seen = seen_text(st)
    start = len(name) + 1
    end = start + len(seen)
    if not line.startswith(seen, start) or line[end : end + 1] != "\t":
        return None
    return _parsed(name, line[end + 1 :].split("\t"), seen, jobs)


def _parsed(name: str, fields: list[str], seen: str, jobs: dict[str, str]) -> QuickEntry | None:
    job_id = name[: -len(JSON)]
    if len(fields) != 5 or not is_valid_id(job_id):
        return None
    text_priority, text_due, text_attempt, text_created, job = fields
    try:
        priority, due, attempt = int(text_priority), float(text_due), int(text_attempt)
        when = datetime.fromisoformat(text_created)
    except ValueError:
        return None
    if not (-_I64 < priority < _I64 and attempt > 0 and when.tzinfo is not None and job):
        return None
    job = jobs.setdefault(job, job)
    return QuickEntry(name, job_id, job, attempt, (-priority, when, job_id), due, seen)


def _line(e: QuickEntry) -> str | None:
    """An entry's line; None for one that cannot be written as one (a job
    name with a tab, a newline or what is not printable)."""
    if e.seen is None or not e.job.isprintable() or "\t" in e.job:
        return None
    created = e.key[1].isoformat()
    return f"{e.name}\t{e.seen}\t{-e.key[0]}\t{e.due!r}\t{e.attempt}\t{created}\t{e.job}\n"


def encode(spool: Spool, key: bytes, lines: list[str]) -> bytes | None:
    """The snapshot's bytes (None: pending/ is gone)."""
    header = _header(spool)
    if header is None:
        return None
    body = (header + "\n" + "".join(lines)).encode()
    return body + _mac(key, body)


def write(
    spool: Spool, key: bytes, entries: Iterable[QuickEntry], keep: Callable[[str], bool]
) -> bool:
    """Replace the snapshot with the entries, and those of the old one whose
    names ``keep`` says are still waiting; False (logged) if it could not be
    written."""
    lines: dict[str, str] = {}
    for name, line in read(spool, key).items():
        if keep(name):
            lines[name] = line + "\n"
    for e in entries:
        text = _line(e)
        if text is not None:
            lines[e.name] = text
        else:
            lines.pop(e.name, None)
    target = path(spool)
    tmp = f"{target}.{secrets.token_hex(6)}.tmp"
    try:
        data = encode(spool, key, list(lines.values()))
        if data is None:
            return False
        spool.ops.write_new(tmp, data, durable=True)
        try:
            spool.ops.replace(tmp, target)
        except OSError:
            spool.ops.unlink_quiet(tmp)
            raise
    except OSError as exc:
        logs.event("order_snapshot_error", logs.WARNING, file=NAME, error=exc)
        return False
    _clean_tmp(spool)
    return True


def _clean_tmp(spool: Spool) -> None:
    """Temporary names of writers that died before their rename."""
    prefix, cutoff = NAME + ".", time.time() - TMP_MAX_AGE_SECONDS
    with contextlib.suppress(OSError):
        for name in spool.ops.scandir_names(spool.root):
            if name.startswith(prefix) and name.endswith(".tmp"):
                where = os.path.join(spool.root_str, name)
                with contextlib.suppress(OSError):
                    if os.lstat(where).st_mtime < cutoff:
                        spool.ops.unlink_quiet(where)
