"""Filesystem notifications: the latency path, never the correctness path.

On Linux the watcher uses watchdog's inotify layer directly, watching only
``pending/`` and ``control/`` for names that *appear* (IN_CREATE,
IN_MOVED_TO, IN_CLOSE_WRITE). It never asks for IN_MOVED_FROM, so the claims
that rename files out of pending/ produce no unpaired move events (which
watchdog's observer would hold back ~0.5 s, delaying everything after), and
the runner's own writes in tmp/, running/ and logs/ cost nothing.
Elsewhere it falls back to watchdog's observer on the spool root.

A queue overflow asks for an immediate rescan; the runner's periodic rescan
catches whatever notifications miss (overflow, network filesystems).
Events are posted as ``messages.FileChanged`` or ``messages.RescanNeeded``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from jobspool.messages import Event, FileChanged, RescanNeeded

Post = Callable[[Event], None]


class _InotifyWatch:
    def __init__(self, dirs: list[Path], post: Post) -> None:
        from watchdog.observers.inotify_c import (
            CallbackId,
            InotifyConstants,
            InotifyEvent,
            InotifyFD,
            Mask,
        )

        mask = Mask(
            InotifyConstants.IN_CREATE
            | InotifyConstants.IN_MOVED_TO
            | InotifyConstants.IN_CLOSE_WRITE
            | InotifyConstants.IN_ONLYDIR
        )
        self._fd = InotifyFD()
        self._by_wd: dict[int, str] = {}
        watch = self

        class Callback:
            def on_event(self, event: InotifyEvent) -> None:
                folder = watch._by_wd.get(event.wd)
                if folder is not None and event.name and not event.is_directory:
                    post(FileChanged(os.path.join(folder, os.fsdecode(event.name))))

            def on_watch_deleted(self, wd: int) -> None:
                post(RescanNeeded())

            def on_queue_overflow(self) -> None:
                post(RescanNeeded())

            def on_events_lost(self) -> None:
                # Called after on_queue_overflow (watchdog 7.1+): that rescan
                # already covers what was lost.
                pass

        callback = Callback()
        for d in dirs:
            wd = self._fd.add_callback(os.fsencode(d), mask, callback, CallbackId(1))
            self._by_wd[wd] = str(d)

    def start(self) -> None:
        self._fd.start()

    def stop(self) -> None:
        self._fd.stop()
        self._fd.join(timeout=5)


class _ObserverWatch:
    def __init__(self, root: Path, dirs: list[Path], post: Post) -> None:
        from watchdog.events import (
            FileClosedEvent,
            FileCreatedEvent,
            FileMovedEvent,
            FileSystemEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer

        interesting = {str(d) for d in dirs}

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory:
                    return
                raw = event.dest_path if event.event_type == "moved" else event.src_path
                path = os.fsdecode(raw)
                if os.path.dirname(path) in interesting:
                    post(FileChanged(path))

        # One recursive watch pairs the moves; the filter keeps the mask small.
        self._observer = Observer()
        self._observer.schedule(
            Handler(),
            str(root),
            recursive=True,
            event_filter=[FileCreatedEvent, FileMovedEvent, FileClosedEvent],
        )

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


class Watcher:
    def __init__(self, root: Path, post: Post) -> None:
        dirs = [root / "pending", root / "control"]
        self._impl: _InotifyWatch | _ObserverWatch
        if sys.platform.startswith("linux"):
            self._impl = _InotifyWatch(dirs, post)
        else:  # pragma: no cover - exercised on macOS and Windows
            self._impl = _ObserverWatch(root, dirs, post)

    def start(self) -> None:
        self._impl.start()

    def stop(self) -> None:
        self._impl.stop()
