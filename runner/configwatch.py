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
* With a ``verify`` (the runner passes the allow-list's class checks), a
  file whose allow-list changed is adopted only once it passed them; they
  import application code in another process, so they run on a thread of
  their own and the caller's loop never waits for them. A file edited again
  while its check runs is judged afresh once that check is over.
* Nothing here holds a lock: a caller shared between threads serialises
  its calls to :meth:`ConfigWatch.poll`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from jobspool import logs
from jobspool.config import Config, load_config

Stamp = tuple[int, int]
Verify = Callable[[Config], None]  # raises (ConfigError) to refuse a config
VERIFY_JOIN_SECONDS = 5.0


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


class _Verification:
    """One run of ``verify`` on a loaded config, on a thread of its own."""

    def __init__(self, config: Config, verify: Verify) -> None:
        self.config = config
        self.error: Exception | None = None
        self._thread = threading.Thread(
            target=self._run, args=(verify,), name="jobspool-config-check", daemon=True
        )
        self._thread.start()

    def _run(self, verify: Verify) -> None:
        try:
            verify(self.config)
        except Exception as exc:  # any error refuses the config
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class ConfigWatch:
    """The config in force, and whether its file has a new one to offer."""

    def __init__(
        self,
        config: Config,
        overrides: Mapping[str, Any] | None = None,
        *,
        log: EventLog = logs.event,
        verify: Verify | None = None,
    ) -> None:
        self._config = config
        self._overrides = dict(overrides or {})
        self._log = log
        self._verify = verify
        self._checking: _Verification | None = None
        self._stamp = _stamp(config.path)

    @property
    def config(self) -> Config:
        return self._config

    def poll(self) -> Config | None:
        """The new config when the file changed and loads (and verifies) cleanly, else None."""
        if self._checking is not None:
            return self._finish_check()
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
        if self._verify is not None and self._allow_list_changed(new):
            self._checking = _Verification(new, self._verify)
            return None
        return self._adopt(new)

    def close(self) -> None:
        """Let a check in progress end (it is bounded by its own timeout)."""
        if self._checking is not None:
            self._checking.join(VERIFY_JOIN_SECONDS)

    def _allow_list_changed(self, new: Config) -> bool:
        old = self._config
        return (new.settings.allowed_jobs, new.base_dir) != (
            old.settings.allowed_jobs,
            old.base_dir,
        )

    def _finish_check(self) -> Config | None:
        check = self._checking
        if check is None or not check.done:
            return None
        self._checking = None
        if check.error is not None:
            self._log("config_refused", logs.ERROR, file=self._config.path, error=check.error)
            return None
        return self._adopt(check.config)

    def _adopt(self, new: Config) -> Config:
        path = self._config.path
        if new.spool_dir != self._config.spool_dir:
            self._log("config_spool_ignored", logs.WARNING, spool=new.spool_dir)
            settings = new.settings.model_copy(update={"spool": self._config.settings.spool})
            new = Config(settings, path)
        self._config = new
        self._log("config_reloaded", file=path, jobs=len(new.settings.allowed_jobs))
        return new
