"""Threads that carry decided finishes to disk while the loop goes on.

Owns only the hand-off: the loop queues a piece of work, one of a few
threads runs it (file I/O and fsyncs, which release the GIL) and posts what
it returned back to the loop's mailbox. Decisions stay on the loop's
thread; the work function never raises (it returns its exception).

Invariants: every queued item is run exactly once and its result posted
once, in a ``(kind, item, result)`` event; ``shutdown`` returns only after
everything queued before it has been run and posted.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

Post = Callable[[tuple[Any, ...]], None]
_STOP = object()


class Publishers:
    def __init__(self, count: int, kind: str, work: Callable[[Any], Any], post: Post) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._kind = kind
        self._work = work
        self._post = post
        self._threads = [
            threading.Thread(target=self._serve, name=f"jobspool-publish-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, item: Any) -> None:
        self._queue.put(item)

    def _serve(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            self._post((self._kind, item, self._work(item)))

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()
