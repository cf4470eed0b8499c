"""What a submitting process keeps between submits: its config and its spool.

An application that queues jobs calls ``run_background_job`` many times;
reading allowed_jobs.yaml and checking the spool's layout on every call
cost more than the durable write itself. This module owns the cache that
lets a long-lived producer skip both, and the checks that keep the cache
from ever answering with something stale.

Invariants:

1. A cached config is what its file holds now: each use finds the file
   again (``--config``, ``JOBSPOOL_CONFIG``, the working directory or its
   parents), compares its identity and stamp (device, inode, size, mtime,
   ctime) and the environment variables that shape a config
   (``config.ENVIRONMENT``) with those it was loaded with, and loads it
   again on any difference.
2. A cached spool is the spool it was: each use looks at its marker
   (``lstat``, no read) and compares the marker's identity with the one
   checked when the spool was opened; a missing or different marker (an
   unmounted or remounted filesystem, a spool made anew) opens it afresh
   through :meth:`Spool.open`, which refuses a directory without one.
3. Nothing here decides what is valid: loading is ``config.load_config``,
   opening is ``Spool.open``; the cache only remembers their answers.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from jobspool.config import CONFIG_NAME, ENVIRONMENT, Config, find_config_path, load_config
from jobspool.sentinel import marker_path
from jobspool.spool import Spool

K = TypeVar("K")
V = TypeVar("V")
Stamp = tuple[int, int, int, int, int]
MAX_ENTRIES = 16  # distinct configs or spools one process submits to


def _stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _environment() -> tuple[str | None, ...]:
    return tuple(map(os.environ.get, ENVIRONMENT))


@dataclass(frozen=True)
class _LoadedConfig:
    config: Config
    stamp: Stamp | None


@dataclass(frozen=True)
class _OpenedSpool:
    spool: Spool
    marker: tuple[int, int]


_configs: dict[tuple[object, ...], _LoadedConfig] = {}
_spools: dict[tuple[object, ...], _OpenedSpool] = {}
_lock = threading.Lock()


def config(path: str | os.PathLike[str] | None, spool: str | None) -> Config:
    """load_config(path, {"spool": spool}), from the cache while invariant 1 holds."""
    environment = _environment()
    chosen = path or environment[0]  # --config, then JOBSPOOL_CONFIG (ENVIRONMENT's first)
    cwd = os.getcwd()  # a relative path, or the search, starts here
    key = (os.fspath(chosen) if chosen else None, cwd, spool, environment)
    with _lock:
        hit = _configs.get(key)
    if hit is not None and _still_current(hit, None if chosen else cwd):
        return hit.config
    found = find_config_path(path)
    loaded = load_config(found, {"spool": spool})
    entry = _LoadedConfig(loaded, _stamp(found) if found else None)
    with _lock:
        _bounded(_configs)[key] = entry
    return loaded


def _still_current(hit: _LoadedConfig, start: str | None) -> bool:
    """Invariant 1, cheaply: the same file, unchanged, and (when found by
    searching from the working directory) no file of that name in a folder
    nearer than the one it was found in."""
    found = hit.config.path
    if found is None or hit.stamp is None or _stamp(found) != hit.stamp:
        return False
    if start is not None:
        folder = start
        while folder != str(found.parent):
            if os.path.lexists(os.path.join(folder, CONFIG_NAME)):
                return False
            parent = os.path.dirname(folder)
            if parent == folder:
                return False  # found is not above the working directory any more
            folder = parent
    return True


def spool(cfg: Config) -> Spool:
    """The config's spool, opened once and reused while invariant 2 holds."""
    s = cfg.settings
    options = {
        "durable": s.durable,
        "max_job_bytes": s.max_job_bytes,
        "min_free_bytes": s.min_free_bytes,
        "min_free_inodes": s.min_free_inodes,
        "log_dir": cfg.log_dir,
    }
    key = (cfg.spool_dir, *options.values())
    marker = _marker_identity(cfg.spool_dir)
    with _lock:
        hit = _spools.get(key)
    if hit is not None and marker is not None and hit.marker == marker:
        return hit.spool
    opened = Spool.open(cfg.spool_dir, **options)
    marker = _marker_identity(cfg.spool_dir)
    if marker is not None:
        with _lock:
            _bounded(_spools)[key] = _OpenedSpool(opened, marker)
    return opened


def forget(cfg: Config) -> None:
    """Drop the config's spool from the cache (after a failed submit: the
    next one opens it afresh, which also recreates a missing directory)."""
    with _lock:
        for key in [k for k in _spools if k[0] == cfg.spool_dir]:
            del _spools[key]


def _marker_identity(root: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(marker_path(root))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _bounded(cache: dict[K, V]) -> dict[K, V]:
    if len(cache) >= MAX_ENTRIES:
        cache.clear()
    return cache
