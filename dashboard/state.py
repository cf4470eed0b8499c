"""Everything one running dashboard holds: config, spool, index, guard, runners.

Owns the lifetime of the dashboard's shared objects. The config file is
re-read when it changes, by the same :class:`~jobspool.configwatch.ConfigWatch`
as the runner's, so the submit form offers what the allow-list offers now;
a broken edit keeps the last good config. The spool directory is fixed at
start.

Two refresh modes: ``background=True`` (the server) keeps the index fresh in
its own thread and requests never wait for disk listings; ``background=False``
(in-process tests, scripts) refreshes the index inside each request that
needs it, so what a request sees is exactly what is on disk.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from typing import Any

from jobspool import binding
from jobspool.config import Config
from jobspool.configwatch import ConfigWatch
from jobspool.dashboard.index import JobIndex
from jobspool.dashboard.queries import JobFinder
from jobspool.dashboard.runners import RunnerWatch
from jobspool.dashboard.security import Guard
from jobspool.spool import Spool
from jobspool.submit import open_spool

LOG = logging.getLogger("dashboard")


@dataclass(frozen=True)
class MethodInfo:
    name: str
    signature: str | None  # "(path: str, rows: int = 100)"; None if not importable


@dataclass(frozen=True)
class JobInfo:
    name: str
    description: str | None
    methods: tuple[MethodInfo, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.name,
            "description": self.description,
            "methods": [{"name": m.name, "signature": m.signature} for m in self.methods],
        }


def _signature(cfg: Config, job: str, method: str) -> str | None:
    base = str(cfg.base_dir)
    if base not in sys.path:
        sys.path.insert(0, base)  # job modules live beside the config, as for the CLI
    try:
        cls = binding.load_class(cfg.class_path(job))
        return binding.plan(cls, method).signature_text()
    except Exception:  # any import or signature problem: show no hint
        return None


def describe_jobs(cfg: Config) -> list[JobInfo]:
    out = []
    for name in sorted(cfg.settings.allowed_jobs):
        spec = cfg.settings.allowed_jobs[name]
        methods = tuple(MethodInfo(m, _signature(cfg, name, m)) for m in spec.allowed_methods)
        out.append(JobInfo(name, spec.description, methods))
    return out


def _log_event(
    action: str, level: int = logging.INFO, exc_text: str | None = None, **fields: Any
) -> None:
    """The config watcher's events, as lines of the dashboard's own log."""
    detail = " ".join(f"{key}={value}" for key, value in fields.items())
    LOG.log(level, "%s %s", action, detail)


class ConfigHolder:
    """The current config; re-read when allowed_jobs.yaml changes on disk."""

    def __init__(self, config: Config, overrides: dict[str, Any] | None = None) -> None:
        self._watch = ConfigWatch(config, overrides, log=_log_event)
        self._jobs: list[JobInfo] | None = None
        self._lock = threading.Lock()

    def get(self) -> Config:
        with self._lock:
            if self._watch.poll() is not None:
                self._jobs = None
            return self._watch.config

    def jobs(self) -> list[JobInfo]:
        cfg = self.get()
        with self._lock:
            if self._jobs is None:
                self._jobs = describe_jobs(cfg)
            return self._jobs


class Dashboard:
    def __init__(
        self,
        config: Config,
        *,
        token: str | None = None,
        bound_host: str = "127.0.0.1",
        overrides: dict[str, Any] | None = None,
        background: bool = True,
        index_limit: int = 200_000,
        refresh_seconds: float = 1.0,
    ) -> None:
        self.configs = ConfigHolder(config, overrides)
        self.spool: Spool = open_spool(config)
        self.index = JobIndex(self.spool, limit=index_limit, interval=refresh_seconds)
        self.finder = JobFinder(self.index, self.spool)
        self.runners = RunnerWatch(self.spool, config.settings.lease_seconds)
        self.guard = Guard(token, bound_host)
        self.background = background
        self._started = False

    @property
    def config(self) -> Config:
        return self.configs.get()

    def start(self) -> None:
        if self.background and not self._started:
            self.index.start()
            self._started = True

    def stop(self) -> None:
        if self._started:
            self.index.stop()
            self._started = False

    def fresh(self) -> JobIndex:
        """The index, refreshed now when there is no background thread."""
        if not self.background:
            self.index.refresh(force=True)
        return self.index

    def changed(self) -> None:
        """An action changed the spool: let the index look again soon."""
        self.index.nudge()

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
