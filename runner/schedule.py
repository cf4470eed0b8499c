"""The runner's in-memory view of pending/: what is due, in which order (no I/O).

Ready jobs are taken highest priority first, then oldest first, then by id.
Delayed jobs (``not_before``, or a retry's ``next_attempt_at``) wait in a
second heap keyed by due time and move to the ready heap when due. Both heaps
use lazy deletion: an entry that was discarded or replaced is skipped when
it surfaces. The index is only a hint: the claim rename decides.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from jobspool.backlog import QuickEntry
from jobspool.model import Job

SortKey = tuple[int, datetime, str]
# From this many entries at once, the heaps are rebuilt instead of pushed to.
BULK_FROM = 64


class Entry(NamedTuple):
    """What the scheduler keeps of a pending file: enough to order it, no more.

    A named tuple rather than a frozen dataclass: a backlog makes a hundred
    thousand at start, and a tuple is made in a sixth of the time."""

    name: str
    job_id: str
    job: str  # the allow-list name, for concurrency caps
    attempt: int  # the number the next attempt will have
    key: tuple[int, datetime, str]
    due: float  # wall-clock epoch seconds; 0.0 = now
    seq: int
    # False: ordered from a quick look at the file (jobspool.backlog), to be
    # loaded in full before it is claimed.
    verified: bool = True


class Schedule:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._ready: list[tuple[tuple[int, datetime, str], int, str]] = []
        self._delayed: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> set[str]:
        return set(self._entries)

    def unverified(self) -> int:
        """Entries from a quick look, not loaded in full yet."""
        return sum(1 for e in self._entries.values() if not e.verified)

    def add(self, name: str, job_id: str, job: Job) -> None:
        due_at = job.due_at()
        self._put(
            Entry(
                name=name,
                job_id=job_id,
                job=job.job,
                attempt=len(job.attempts) + 1,
                key=job.sort_key(),
                due=due_at.timestamp() if due_at else 0.0,
                seq=next(self._seq),
            )
        )

    def add_unverified(
        self, name: str, *, job_id: str, job: str, attempt: int, key: SortKey, due: float
    ) -> None:
        """An entry from a quick look at the file, loaded in full before its claim."""
        self._put(Entry(name, job_id, job, attempt, key, due, next(self._seq), verified=False))

    def add_unverified_many(self, found: Sequence[QuickEntry]) -> None:
        """A backlog's quick entries at once: each heap is rebuilt in one
        pass rather than pushed to a hundred thousand times."""
        if len(found) < BULK_FROM:
            for f in found:
                self.add_unverified(
                    f.name, job_id=f.job_id, job=f.job, attempt=f.attempt, key=f.key, due=f.due
                )
            return
        for f in found:
            seq = next(self._seq)
            self._entries[f.name] = Entry(
                f.name, f.job_id, f.job, f.attempt, f.key, f.due, seq, False
            )
            if f.due:
                self._delayed.append((f.due, seq, f.name))
            else:
                self._ready.append((f.key, seq, f.name))
        heapq.heapify(self._delayed)
        heapq.heapify(self._ready)

    def _put(self, entry: Entry) -> None:
        name = entry.name
        self._entries[name] = entry
        if entry.due:
            heapq.heappush(self._delayed, (entry.due, entry.seq, name))
        else:
            heapq.heappush(self._ready, (entry.key, entry.seq, name))

    def defer(self, entry: Entry, until: float) -> None:
        """Put a taken entry back, not due before ``until`` (e.g. a claim that hit EIO)."""
        again = Entry(
            entry.name,
            entry.job_id,
            entry.job,
            entry.attempt,
            entry.key,
            until,
            next(self._seq),
            entry.verified,
        )
        self._entries[entry.name] = again
        heapq.heappush(self._delayed, (until, again.seq, entry.name))

    def discard(self, name: str) -> None:
        self._entries.pop(name, None)

    def _live(self, seq: int, name: str) -> Entry | None:
        entry = self._entries.get(name)
        return entry if entry is not None and entry.seq == seq else None

    def promote(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, seq, name = heapq.heappop(self._delayed)
            entry = self._live(seq, name)
            if entry is not None:
                heapq.heappush(self._ready, (entry.key, seq, name))

    def next_due(self) -> float | None:
        while self._delayed and self._live(self._delayed[0][1], self._delayed[0][2]) is None:
            heapq.heappop(self._delayed)
        return self._delayed[0][0] if self._delayed else None

    def has_ready(self, now: float) -> bool:
        self.promote(now)
        while self._ready and self._live(self._ready[0][1], self._ready[0][2]) is None:
            heapq.heappop(self._ready)
        return bool(self._ready)

    def take(self, now: float, allow: Callable[[Entry], bool] = lambda _e: True) -> Entry | None:
        """Remove and return the best ready entry that ``allow`` accepts."""
        self.promote(now)
        skipped = []
        found = None
        while self._ready:
            item = heapq.heappop(self._ready)
            entry = self._live(item[1], item[2])
            if entry is None:
                continue
            if allow(entry):
                found = entry
                del self._entries[entry.name]
                break
            skipped.append(item)
        for item in skipped:
            heapq.heappush(self._ready, item)
        return found
