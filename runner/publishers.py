"""Threads that carry decided finishes to disk while the loop goes on.

Owns only the hand-off: the loop queues a piece of work, one of a few
threads runs it (file I/O and fsyncs, which release the GIL) and posts what
it returned back to the loop's mailbox. Decisions stay on the loop's
thread; the work function never raises (it returns its exception).

A thread takes everything queued when it comes for work, up to
``max_group`` items, and hands them to the work function as one group (a
group commit: one flush for all). An item queued to idle threads goes
alone, so grouping adds no wait; groups form by themselves only while the
threads are busy, which is when they pay.

Invariants: every queued item is run exactly once and its result posted
once, as a ``messages.Published`` message, in the order of its group;
``shutdown`` returns only after everything queued before it has been run
and posted.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from jobspool.messages import Event, Published

T = TypeVar("T")
Post = Callable[[Event], None]
_STOP: Any = object()


def one_by_one(
    work: Callable[[T], bool | Exception],
) -> Callable[[list[T]], list[bool | Exception]]:
    """A group's work for items that gain nothing from being done together."""
    return lambda group: [work(item) for item in group]


class Publishers(Generic[T]):
    def __init__(
        self,
        count: int,
        work: Callable[[list[T]], list[bool | Exception]],
        post: Post,
        max_group: int = 64,
    ) -> None:
        self._queue: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._work = work
        self._post = post
        self._max_group = max_group
        self._threads = [
            threading.Thread(target=self._serve, name=f"jobspool-publish-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, item: T) -> None:
        self._queue.put(item)

    def _serve(self) -> None:
        stopping = False
        while not stopping and (item := self._queue.get()) is not _STOP:
            group = [item]
            while len(group) < self._max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:  # this thread's own: run what it took, then stop
                    stopping = True
                    break
                group.append(more)
            for one, outcome in zip(group, self._work(group), strict=True):
                self._post(Published(one, outcome))

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()
