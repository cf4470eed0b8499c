"""The dashboard's in-memory index of the spool: every job as one small row.

Owns which job files the dashboard has read and what it kept of them. A
refresh lists each status directory (cheaply: see :mod:`jobspool.dashboard.listing`),
reads only files it has not read before (through ``Spool.view``, never its
own parsing), forgets files that left, and updates the statistics in
:mod:`jobspool.dashboard.stats` by the difference. Requests never open job files to
count, chart, filter or search; only the files shown on a page are opened.

Behaviour (documented for users in docs/DASHBOARD.md):
* On start the directories are listed at once, so counts and unfiltered
  lists work immediately; file contents are read in the background, newest
  first, pending/running/failed/cancelled before completed. Until that is
  done, statistics and searches say they are partial.
* After that, each refresh (every ``interval`` seconds, or sooner when an
  action nudges it) reads only new or replaced files. A file is identified by
  its name plus, where a name can be reused (pending, running, failed,
  cancelled), its file identity (inode, size and times).
* Memory is capped: per status only the newest ``limit`` jobs (by id, which
  sorts by submission time) are kept as rows; older ones are still counted
  and listed, but not charted or searched. A row costs about half a kilobyte.
* A file that cannot be read as a job keeps a placeholder row, so it is not
  read again and again; it is re-read if it is replaced.
* A file that vanishes between the listing and the read (a purge removed
  it, or a move took it on) gets no row; the next listing forgets its name.
* In the background mode, after every 20,000 new rows the index moves what
  exists to the garbage collector's permanent generation (``gc.freeze``):
  rows are plain tuples without cycles, and a full collection walking 100,000
  of them would stall every request thread.

Thread model: one writer (the refresh thread, or the caller of
:meth:`JobIndex.refresh`), many readers. Readers never iterate a mutable
container: :meth:`JobIndex.ordered` returns a list the writer never mutates
again (it publishes a new one), and row lookups are single ``dict.get``
calls. Aggregates are read and written under ``lock``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import threading
import time
from bisect import insort
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobspool.actions import resubmitted_from_note
from jobspool.dashboard.listing import DirWatch, Entries
from jobspool.dashboard.stats import OUTCOME_CODES, Aggregates, Row
from jobspool.model import SUBMITTED, JobView
from jobspool.names import job_id_of
from jobspool.spool import Spool
from jobspool.states import Status

LOG = logging.getLogger("dashboard")

# Pending, running, failed and cancelled first: small, and what people look at.
READ_ORDER = (Status.RUNNING, Status.PENDING, Status.FAILED, Status.CANCELLED, Status.COMPLETED)
TEXT_CAP = 240  # characters of params and of error text kept for search
INTERN_MAX = 160  # shorter search texts are shared between identical rows
PLACEHOLDER_TEXT = ""
FREEZE_EVERY = 20_000  # rows added before the collector is told to skip them


def _intern(text: str) -> str:
    return sys.intern(text) if len(text) <= INTERN_MAX else text


def _params_text(params: object) -> str:
    try:
        text = json.dumps(params, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        text = str(params)
    return text[:TEXT_CAP]


def search_text(params: object, error: Mapping[str, Any] | None, reason: object) -> str:
    """What a search matches besides the id: params, then error and reason."""
    parts = [_params_text(params)]
    if error is not None:
        parts.append(f"{_text(error['type'])}: {_text(error['message'])}"[:TEXT_CAP])
    if reason:
        parts.append(_text(reason)[:TEXT_CAP])
    return _intern("\n".join(parts).lower())


def row_of(view: JobView, ident: int, now: float | None = None) -> Row:
    """The row of one file read through the spool (Spool.view)."""
    return row_from_doc(view.record.model_dump(mode="json"), ident, now)


def row_from_doc(doc: Mapping[str, Any], ident: int, now: float | None = None) -> Row:
    """The row of one record as JSON, whether read through the spool's model
    or, for a finished job, straight from its file (``quick_row``): one
    builder, so both readings give the same row. ``now`` (epoch, default
    the clock) is when it is judged whether the job is still waiting (as
    Job.waiting_until). TypeError, KeyError or ValueError for a record whose
    fields are not of their types."""
    moment = time.time() if now is None else now
    attempts = _list(doc.get("attempts"))
    last = _mapping(attempts[-1]) if attempts else None
    codes = "".join(OUTCOME_CODES.get(_text(_mapping(a)["outcome"]), "f") for a in attempts)
    duration = -1.0
    if last is not None and last.get("duration_seconds") is not None:
        duration = _number(last["duration_seconds"])
    due = max(_epoch(doc.get("not_before")), _epoch(doc.get("next_attempt_at")))
    error = doc.get("error")
    return Row(
        ident=ident,
        job=sys.intern(_text(doc["job"])),
        method=sys.intern(_text(doc["method"])),
        created=_epoch(doc.get("created_at")),
        finished=_epoch(last.get("finished_at")) if last is not None else 0.0,
        duration=duration,
        priority=_integer(doc.get("priority", 0)),
        outcomes=sys.intern(codes),
        text=search_text(
            doc.get("params"), None if error is None else _mapping(error), doc.get("reason")
        ),
        waiting=due if due > moment else 0.0,
        source=_source(_list(doc.get("history"))),
    )


def quick_row(spool: Spool, status: Status, name: str, ident: int, now: float) -> Row | None:
    """A finished job's row straight from its file, without the record's
    model: a bounded, no-follow read and the JSON. Finished records are
    written by runners alone, so this is the first index's fast path;
    anything unusual (not a regular file, over the cap, not JSON, a field
    of the wrong type) gives None, and the caller reads the file through
    the spool instead (``Spool.view``), which judges it."""
    path = spool.path_in(status, name)
    try:
        data, _st = spool.ops.read_regular_stat(path, spool.max_job_bytes)
        if len(data) > spool.max_job_bytes:
            return None
        doc = json.loads(data.decode())
        return row_from_doc(_mapping(doc), ident, now)
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return None


def _source(history: list[Any]) -> str:
    for entry in history:
        item = _mapping(entry)
        if item.get("action") == SUBMITTED:
            note = item.get("note")
            return resubmitted_from_note(note if isinstance(note, str) else None) or ""
    return ""


def _mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return value


def _list(value: object) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError("not a list")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _integer(value: object) -> int:
    if type(value) is not int:
        raise TypeError("not an integer")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return float(value)


def _epoch(value: object) -> float:
    """An ISO time in epoch seconds (naive means UTC, as the record model
    reads it); 0.0 for none."""
    if value is None:
        return 0.0
    when = datetime.fromisoformat(_text(value))
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when).timestamp()


def placeholder(ident: int) -> Row:
    return Row(ident, "", "", 0.0, 0.0, -1.0, 0, "", PLACEHOLDER_TEXT)


def _reordered(ordered: list[str], gone: list[str], added: list[str]) -> list[str]:
    """A new sorted name list (the old one is never mutated: readers may hold it)."""
    if gone:
        dropped = set(gone)
        out = [n for n in ordered if n not in dropped]
    else:
        out = list(ordered)
    if not added:
        return out
    if not out or added[0] > out[-1]:
        out.extend(added)  # the usual case: new ids sort after all the others
    elif len(added) < 64:
        for name in added:
            insort(out, name)
    else:
        out.extend(added)
        out.sort()
    return out


@dataclass
class _StatusState:
    watch: DirWatch
    known: Entries = field(default_factory=dict)
    ordered: list[str] = field(default_factory=list)  # names, ascending; never mutated
    rows: dict[str, Row] = field(default_factory=dict)
    todo: list[str] = field(default_factory=list)  # names to read, ascending
    listed: bool = False
    version: int = 0  # raised whenever names or rows of this status change


@dataclass(frozen=True)
class PendingState:
    """Pending jobs split by whether they are due (see ``Row.waiting``)."""

    ready: int
    scheduled: int  # not due yet: delayed (not_before) or waiting for a retry
    oldest_ready: tuple[str, float] | None  # (job id, created epoch) of the oldest due job


@dataclass(frozen=True)
class IndexState:
    """How far the index is, for the UI and the API."""

    ready: bool
    rows: int
    to_read: int
    limit: int
    refreshed_at: float  # wall clock of the last completed refresh; 0 before


class JobIndex:
    """Rows and statistics for every job file, kept current by :meth:`refresh`."""

    def __init__(
        self,
        spool: Spool,
        *,
        limit: int = 200_000,
        interval: float = 1.0,
        racy_seconds: float = 2.0,
    ) -> None:
        self.spool = spool
        self.limit = limit
        self.interval = interval
        self.lock = threading.Lock()
        self.aggregates = Aggregates()
        self.generation = 0
        self.refreshed_at = 0.0
        self._states = {
            status: _StatusState(
                DirWatch(
                    spool,
                    status,
                    track_identity=status is not Status.COMPLETED,
                    racy_seconds=racy_seconds,
                )
            )
            for status in Status
        }
        # Resubmission links, old id -> {new id: rows that name it}; written by
        # the one writer under ``lock`` as rows come and go.
        self._links: dict[str, dict[str, int]] = {}
        self._refreshing = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ readers

    def ordered(self, status: Status) -> list[str]:
        """File names of one status in ascending id order. Do not mutate."""
        return self._states[status].ordered

    def row(self, status: Status, name: str) -> Row | None:
        return self._states[status].rows.get(name)

    def count(self, status: Status) -> int:
        return len(self._states[status].ordered)

    def counts(self) -> dict[str, int]:
        return {status.value: self.count(status) for status in Status}

    def complete(self, status: Status) -> bool:
        """True when every file of that status (within the limit) has a row."""
        st = self._states[status]
        return st.listed and not st.todo

    def indexed(self, status: Status, name: str) -> bool:
        return name in self._states[status].rows

    def state(self) -> IndexState:
        to_read = sum(len(st.todo) for st in self._states.values())
        rows = sum(len(st.rows) for st in self._states.values())
        listed = all(st.listed for st in self._states.values())
        return IndexState(listed and to_read == 0, rows, to_read, self.limit, self.refreshed_at)

    def job_names(self) -> list[str]:
        with self.lock:
            labels = list(self.aggregates.names)
        return sorted({label.split(".", 1)[0] for label in labels})

    def oldest_pending(self, now: float | None = None) -> tuple[str, float] | None:
        """(job id, created epoch) of the due pending job waiting longest:
        jobs not due yet (scheduled, or waiting for a retry) do not count."""
        return self.pending(now).oldest_ready

    def pending(self, now: float | None = None) -> PendingState:
        """Pending jobs due at ``now`` (default: the clock) and those still waiting.

        A pending file not read yet counts as ready (it cannot be told apart)."""
        moment = time.time() if now is None else now
        st = self._states[Status.PENDING]
        rows = st.rows
        best: tuple[str, float] | None = None
        scheduled = 0
        names = st.ordered
        for name in names:
            row = rows.get(name)
            if row is None:
                continue
            if row.waits(moment):
                scheduled += 1
                continue
            if row.created <= 0:
                continue
            if best is None or row.created < best[1]:
                best = (job_id_of(Status.PENDING, name), row.created)
        return PendingState(len(names) - scheduled, scheduled, best)

    def resubmissions(self, job_id: str) -> list[str]:
        """Ids of the jobs resubmitted from ``job_id`` (among the rows read), oldest first."""
        with self.lock:
            found = self._links.get(job_id)
            return sorted(found) if found else []

    def _account(self, status: Status, name: str, row: Row, sign: int, now: float) -> None:
        """A row enters (+1) or leaves (-1) the index: statistics and links. Under ``lock``."""
        self.aggregates.add(status, row, sign, now)
        if row.source:
            new_id = job_id_of(status, name)
            links = self._links.setdefault(row.source, {})
            links[new_id] = links.get(new_id, 0) + sign
            if links[new_id] <= 0:
                del links[new_id]
                if not links:
                    del self._links[row.source]

    def version(self, status: Status) -> int:
        return self._states[status].version

    def snapshot(self, status: Status) -> tuple[int, list[str], list[Row | None]]:
        """(version, names ascending, their rows or None) for one status.

        Rows read while the writer works may be newer than ``version``; a
        cache keyed by it is then rebuilt on the next call, never wrong for long.
        """
        st = self._states[status]
        version = st.version
        names = st.ordered
        rows = st.rows
        return version, names, [rows.get(name) for name in names]

    # ------------------------------------------------------------ writer

    def refresh(self, read_budget: float | None = None, *, force: bool = False) -> bool:
        """List changed directories and read new files; True when all is read.

        ``read_budget`` caps the seconds spent reading files in this call
        (None: read everything now).
        """
        with self._refreshing:
            now = time.time()
            for status in READ_ORDER:
                self._relist(status, force=force, now=now)
            deadline = None if read_budget is None else time.perf_counter() + read_budget
            done = self._read(deadline, now)
            with self.lock:
                self.aggregates.prune(now)
            self.refreshed_at = now
            return done

    def _relist(self, status: Status, *, force: bool, now: float) -> None:
        st = self._states[status]
        new = st.watch.poll(force=force)
        if new is None:
            return
        old = st.known
        st.listed = True
        if old == new:
            return
        gone = [n for n in old if n not in new]
        replaced = [n for n, ident in new.items() if n in old and old[n] != ident]
        added = sorted(n for n in new if n not in old)
        # Update in place: the names already held stay the only copy in memory.
        for name in gone:
            del old[name]
        for name in (*replaced, *added):
            old[name] = new[name]
        with self.lock:
            for name in (*gone, *replaced):
                row = st.rows.pop(name, None)
                if row is not None:
                    self._account(status, name, row, -1, now)
        st.ordered = _reordered(st.ordered, gone, added)
        todo = [n for n in st.todo if n in old and n not in st.rows]
        todo.extend(added)
        todo.extend(replaced)
        todo = sorted(set(todo))
        st.todo = self._within_limit(status, st, todo, now)
        st.version += 1
        self.generation += 1

    def _within_limit(
        self, status: Status, st: _StatusState, todo: list[str], now: float
    ) -> list[str]:
        """Drop rows and reads older than the newest ``limit`` names of a status."""
        if len(st.ordered) <= self.limit:
            return todo
        cutoff = st.ordered[-self.limit]
        old = [n for n in st.rows if n < cutoff]
        if old:
            with self.lock:
                for name in old:
                    row = st.rows.pop(name, None)
                    if row is not None:
                        self._account(status, name, row, -1, now)
        return [n for n in todo if n >= cutoff]

    def _read(self, deadline: float | None, now: float) -> bool:
        for status in READ_ORDER:
            st = self._states[status]
            while st.todo:
                if deadline is not None and time.perf_counter() > deadline:
                    return False
                batch = st.todo[-64:]
                del st.todo[-64:]
                fresh = []
                for name in reversed(batch):
                    ident = st.known.get(name)
                    if ident is None or name in st.rows:
                        continue
                    row = self._row(status, name, ident, now)
                    if row is None and not os.path.lexists(self.spool.path_in(status, name)):
                        continue  # purged or moved since the listing: the next one forgets it
                    fresh.append((name, placeholder(ident) if row is None else row))
                with self.lock:
                    for name, row in fresh:
                        st.rows[name] = row
                        self._account(status, name, row, +1, now)
                if fresh:
                    st.version += 1
                    self.generation += 1
        return True

    def _row(self, status: Status, name: str, ident: int, now: float) -> Row | None:
        """A file's row: a finished record straight from its file when it
        reads cleanly (``quick_row``), else through the spool's model."""
        if status.terminal:
            row = quick_row(self.spool, status, name, ident, now)
            if row is not None:
                return row
        view = self.spool.view(status, name)
        return None if view is None else row_of(view, ident, now)

    # ------------------------------------------------------------ thread

    def start(self) -> None:
        """List everything now, then keep the index fresh in a background thread."""
        self.refresh(read_budget=0.0)
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="jobspool-index", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Ask for a refresh soon (after an action changed the spool)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        frozen_at = 0
        while not self._stopping:
            try:
                done = self.refresh(read_budget=0.05)
            except Exception:  # the thread must outlive any bad moment of the spool
                LOG.exception("index refresh failed; trying again")
                done = True
            rows = self.state().rows
            if done and rows - frozen_at >= FREEZE_EVERY:
                # Rows hold no reference cycles; without this every full garbage
                # collection walks all of them and stalls requests by 50-100 ms.
                gc.freeze()
                frozen_at = rows
            if done:
                self._wake.wait(self.interval)
                self._wake.clear()
            else:
                # Reading the backlog: leave request threads room between batches.
                time.sleep(0.002)
