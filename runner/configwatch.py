"""Hot reload of allowed_jobs.yaml, shared by the runner and the dashboard.

Owns the decision to adopt an edited config file. The file is looked at by
its (mtime, size) stamp; a changed stamp makes one attempt to load it with
the same overrides (environment, flags) as at start.

Invariants kept here:

* The config in force is always one that loaded cleanly: a file that fails
  to load (a half-saved edit, an unknown key, bad YAML) is refused with one
  logged error, and is tried again only once its stamp changes again.
* The spool directory is fixed at start: a reloaded file that names another
  spool is adopted with the spool in force, and a warning says so.
* Nothing here holds a lock: a caller shared between threads serialises
  its calls to :meth:`ConfigWatch.poll`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from jobspool import logs
from jobspool.config import Config, load_config

Stamp = tuple[int, int]


class EventLog(Protocol):
    """Where reload events go: :func:`jobspool.logs.event`, or an adapter."""

    def __call__(
        self, action: str, level: int = ..., exc_text: str | None = ..., **fields: Any
    ) -> None: ...


def _stamp(path: Path | None) -> Stamp | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class ConfigWatch:
    """The config in force, and whether its file has a new one to offer."""

    def __init__(
        self,
        config: Config,
        overrides: Mapping[str, Any] | None = None,
        *,
        log: EventLog = logs.event,
    ) -> None:
        self._config = config
        self._overrides = dict(overrides or {})
        self._log = log
        self._stamp = _stamp(config.path)

    @property
    def config(self) -> Config:
        return self._config

    def poll(self) -> Config | None:
        """The new config when the file changed and loads cleanly, else None."""
        path = self._config.path
        stamp = _stamp(path)
        if path is None or stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            new = load_config(path, self._overrides)
        except Exception as exc:  # any error: keep the config in force
            self._log("config_refused", logs.ERROR, file=path, error=exc)
            return None
        if new.spool_dir != self._config.spool_dir:
            self._log("config_spool_ignored", logs.WARNING, spool=new.spool_dir)
            settings = new.settings.model_copy(update={"spool": self._config.settings.spool})
            new = Config(settings, path)
        self._config = new
        self._log("config_reloaded", file=path, jobs=len(new.settings.allowed_jobs))
        return new
