"""Threads that carry decided finishes to disk while the loop goes on.

Owns only the hand-off: the loop queues a piece of work, one of a few
threads runs it (file I/O and fsyncs, which release the GIL) and posts what
it returned back to the loop's mailbox. Decisions stay on the loop's
thread; the work function never raises (it returns its exception).

Invariants: every queued item is run exactly once and its result posted
once, as a ``messages.Published`` message; ``shutdown`` returns only after
everything queued before it has been run and posted.
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


class Publishers(Generic[T]):
    def __init__(self, count: int, work: Callable[[T], bool | Exception], post: Post) -> None:
        self._queue: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._work = work
        self._post = post
        self._threads = [
            threading.Thread(target=self._serve, name=f"jobspool-publish-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, item: T) -> None:
        self._queue.put(item)

    def _serve(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            self._post(Published(item, self._work(item)))

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()
