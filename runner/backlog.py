"""Reading a large pending/ quickly: only what orders each job.

A runner started on a backlog of 100,000 jobs must know the order of all of
them before its first claim (priority first, then age), but it need not
validate all of them first: it claims one at a time. This module owns the
quick look that orders a pending file: one bounded no-follow read, the
JSON, the seal, and the few fields the order depends on (``priority``,
``created_at``, ``not_before``, and for a sealed record ``next_attempt_at``
and the number of attempts). The intake keeps such an entry as a hint and
loads the file in full, with every check of a normal load, when the entry
comes up for a claim (:meth:`jobspool.stages.intake.Intake.take`).

Invariants:

1. A quick entry orders the file exactly as its full load would: an
   unsealed record's bookkeeping is ignored here too (its retry time and
   attempts are not believed), and the seal is checked on the bytes read.
2. Whatever is unusual gets no quick entry, and goes through the full load
   at once: a name that is not an id, a file that is not a regular file
   with one name, over the size cap, not JSON, a field of the wrong type,
   a time that does not parse. The quick look never judges a file bad.
3. Nothing is written, moved or quarantined here.
4. An entry carries the identity of the file as read (``seen``) only when
   the file's ctime was :data:`SETTLED_NS` old when read: that is what the
   order snapshot may write and later vouch for (:mod:`jobspool.pendingorder`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import stat
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import NamedTuple

from pydantic_core import from_json

from jobspool import sealing
from jobspool.ids import is_valid_id
from jobspool.names import JSON

_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# A file changed less than this long before it was read is not settled:
# another change within the clock's tick could keep its ctime.
SETTLED_NS = 2_000_000_000
MAX_PRIORITY = 2**63  # a bigger number is left to the full load to refuse
# pydantic-core's parser (already a dependency): 0.3 s for 100,000 records
# where the json module took 0.53 s. It checks UTF-8 and refuses NaN and
# Infinity itself; anything it refuses goes to the strict full load.
_decode = functools.partial(from_json, allow_inf_nan=False)


class QuickEntry(NamedTuple):  # a tuple: made 100,000 times at start
    name: str
    job_id: str
    job: str
    attempt: int
    key: tuple[int, datetime, str]
    due: float  # epoch seconds; 0.0: due now
    # The file as read, "inode<TAB>size<TAB>mtime_ns<TAB>ctime_ns" (as the
    # order snapshot writes it: text is half the memory of four ints), once
    # it was settled when read (jobspool.pendingorder); None while young.
    seen: str | None = None


def scan(dir_fd: int, names: Iterable[str], key: bytes, cap: int) -> Iterator[QuickEntry | str]:
    """Each name's quick entry, or the name itself when it needs a full load."""
    for name in names:
        yield _quick(dir_fd, name, key, cap) or name


def scan_all(directory: str, names: list[str], key: bytes, cap: int) -> list[QuickEntry | str]:
    """scan() over a directory's new names, opening the directory once.

    Not shared with a helper process: on two cores one for half the names
    gained 3 % (1.04 s against 1.01 s for 100,000 files); the look is a few
    system calls and a JSON parse per file, and the two halves contend for
    the same directory."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | _O_DIRECTORY)
    except OSError:
        return list(names)  # each gets the full load, which reports what is wrong
    try:
        with no_collection():
            return list(scan(dir_fd, names, key, cap))
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """The garbage collector held off while a backlog's entries are made.

    Each file makes a few objects and keeps one: the collector, triggered
    by the allocations, would walk all that are kept (and all a starting
    runner has made before) over and over. Entries hold no cycle, so
    nothing is left for a later collection."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _quick(dir_fd: int, name: str, key: bytes, cap: int) -> QuickEntry | None:
    stem = name[: -len(JSON)] if name.endswith(JSON) else ""
    if not is_valid_id(stem):
        return None
    read = _read(dir_fd, name, cap)
    if read is None:
        return None
    data, st = read
    try:
        doc = _decode(data)
    except ValueError:  # not JSON, not UTF-8, or nested past its limit
        return None
    if not isinstance(doc, dict):
        return None
    sealed = doc.get("id") == stem and sealing.is_sealed(data, key)
    return _entry(name, stem, doc, sealed, st)


def seen_text(st: os.stat_result) -> str:
    """What identifies the file as read: a new name or any change to the
    inode changes its ctime (jobspool.pendingorder)."""
    return f"{st.st_ino}\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}"


def _read(dir_fd: int, name: str, cap: int) -> tuple[bytes, os.stat_result] | None:
    try:
        fd = os.open(name, _FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > cap:
            return None
        data = os.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return (data, st) if len(data) == st.st_size else None


def _entry(
    name: str, job_id: str, doc: dict[str, object], sealed: bool, st: os.stat_result
) -> QuickEntry | None:
    job, priority = doc.get("job"), doc.get("priority", 0)
    if not isinstance(job, str) or type(priority) is not int or abs(priority) >= MAX_PRIORITY:
        return None
    attempts = doc.get("attempts", []) if sealed else []
    if not isinstance(attempts, list):
        return None
    try:
        created = _time(doc.get("created_at")) or datetime.fromtimestamp(st.st_mtime, UTC)
        due = _epoch(doc.get("not_before"))
        if sealed:
            due = max(due, _epoch(doc.get("next_attempt_at")))
    except (TypeError, ValueError, OverflowError):
        return None
    key = (-priority, created, job_id)
    seen = seen_text(st) if st.st_ctime_ns < time.time_ns() - SETTLED_NS else None
    return QuickEntry(name, job_id, job, len(attempts) + 1, key, due, seen)


def _epoch(value: object) -> float:
    """A due time as epoch seconds; 0.0 (due now) when there is none."""
    when = _time(value)
    return when.timestamp() if when is not None else 0.0


def _time(value: object) -> datetime | None:
    """An ISO time as the record model reads it: naive means UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("not a time")
    when = datetime.fromisoformat(value)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
