"""Filesystem notifications: the latency path, never the correctness path.

One recursive watchdog observer on the spool root (watching pending/ alone
leaves unpaired moved-from events that watchdog holds back ~0.5 s). Only
events under pending/ and control/ are passed on, as ("fs", path) tuples;
the runner's periodic rescan catches anything inotify drops or never sees
(overflow, network filesystems).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer


class _Handler(FileSystemEventHandler):
    def __init__(self, interesting: tuple[str, ...], post: Callable[[tuple[Any, ...]], None]):
        self._interesting = interesting
        self._post = post

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw) if raw else ""
            if path and os.path.dirname(path) in self._interesting:
                self._post(("fs", path))


class Watcher:
    def __init__(self, root: Path, post: Callable[[tuple[Any, ...]], None]) -> None:
        interesting = (str(root / "pending"), str(root / "control"))
        self._observer = Observer()
        self._observer.schedule(_Handler(interesting, post), str(root), recursive=True)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
