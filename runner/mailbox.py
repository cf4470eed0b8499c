"""The runner loop's inbox: events from other threads, and a way to sleep.

Threads (the watcher, publishers, a spawn launcher) and the signal handler
``put`` events; only the loop's own thread takes them. Where ``select.poll``
exists the loop sleeps in one ``poll`` on a self-pipe plus one more
descriptor (the fork server's pipe), so a message from the fork server
wakes the loop directly, without a reader thread in between: two thread
hand-offs fewer per attempt. Elsewhere (Windows) it sleeps on the queue.

Invariants: ``put`` never blocks and is safe from a signal handler (the
queue is reentrant; a full self-pipe just means a wake-up is pending);
an event put before ``wait`` is never slept through.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
from typing import Any

from jobspool.messages import Event


class Mailbox:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._owner = threading.get_ident()
        self._peeked: list[Event] = []
        self._poll: Any = None
        self._wake_r = self._wake_w = -1

    def own(self) -> None:
        """The calling thread is the one that waits (its puts need no wake-up).

        Opens the self-pipe, so a mailbox that is only stepped by hand (tests)
        holds no descriptors; :meth:`close` gives them back.
        """
        self._owner = threading.get_ident()
        if hasattr(select, "poll") and self._wake_r < 0:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._poll = select.poll()

    def put(self, event: Event, *, wake: bool = False) -> None:
        """Queue an event; wake the loop unless this is the loop's own thread
        (``wake=True`` for a signal handler: it runs on the loop's thread,
        but may interrupt the loop's sleep, which then resumes)."""
        self._queue.put(event)
        if self._wake_w >= 0 and (wake or threading.get_ident() != self._owner):
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"\0")

    def get_nowait(self) -> Event | None:
        if self._peeked:
            return self._peeked.pop(0)
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def wait(self, timeout: float, fd: int | None = None) -> None:
        """Sleep until an event is queued, ``fd`` is readable, or timeout."""
        if self._peeked or not self._queue.empty():
            return
        if self._wake_r < 0:
            with contextlib.suppress(queue.Empty):
                self._peeked.append(self._queue.get(timeout=max(0.0, timeout)))
            return
        fds = [self._wake_r] if fd is None else [self._wake_r, fd]
        for f in fds:
            self._poll.register(f, select.POLLIN)
        try:
            # Round up: a timer due in 0.4 ms must not become a busy 0 ms poll.
            self._poll.poll(max(0, int(timeout * 1000 + 0.999)))
        finally:
            for f in fds:
                self._poll.unregister(f)
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 4096):
                pass

    def close(self) -> None:
        fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for f in fds:
            if f >= 0:
                os.close(f)
