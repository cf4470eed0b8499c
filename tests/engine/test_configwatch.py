"""ConfigWatch: an edited allowed_jobs.yaml is adopted once, a broken one refused once.

Real files on a private directory; events are collected through the
watcher's ``log`` hook, which the dashboard uses too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from jobspool import logs
from jobspool.config import load_config
from jobspool.configwatch import ConfigWatch
from tests.conftest import SpoolEnv


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, dict[str, Any]]] = []

    def __call__(
        self, action: str, level: int = logs.INFO, exc_text: str | None = None, **fields: Any
    ) -> None:
        self.seen.append((action, level, fields))

    def actions(self) -> list[str]:
        return [action for action, _level, _fields in self.seen]


def _edit(env: SpoolEnv, text: str, tick: int) -> None:
    """Write the file with a distinct mtime, as an editor saving it would."""
    env.config.write_text(text)
    stamp = 1_700_000_000 + tick
    os.utime(env.config, (stamp, stamp))


def _text(env: SpoolEnv, **changes: Any) -> str:
    return yaml.safe_dump({**env.settings, **changes}, sort_keys=False)


def test_an_edit_is_adopted_once_and_a_broken_one_refused_once(env: SpoolEnv) -> None:
    events = Events()
    overrides = {"workers": 7}  # as flags and JOBSPOOL_* give them
    watch = ConfigWatch(load_config(env.config, overrides), overrides, log=events)
    assert watch.poll() is None  # nothing changed yet
    assert watch.config.settings.workers == 7

    _edit(env, _text(env, poll_seconds=0.7), 1)
    new = watch.poll()
    assert new is not None and new is watch.config
    assert new.settings.poll_seconds == 0.7
    assert new.settings.workers == 7  # the overrides still apply
    assert watch.poll() is None
    assert events.actions() == ["config_reloaded"]

    _edit(env, _text(env) + "surprise: true\n", 2)
    assert watch.poll() is None
    assert watch.poll() is None  # refused once, not at every look
    assert watch.config is new
    action, level, fields = events.seen[-1]
    assert (action, level) == ("config_refused", logs.ERROR)
    assert "surprise: unknown key" in str(fields["error"])
    assert events.actions().count("config_refused") == 1

    _edit(env, _text(env, poll_seconds=0.9), 3)
    fixed = watch.poll()
    assert fixed is not None and fixed.settings.poll_seconds == 0.9


def test_a_new_spool_path_is_ignored_with_a_warning(env: SpoolEnv, tmp_path: Path) -> None:
    events = Events()
    first = load_config(env.config)
    watch = ConfigWatch(first, log=events)
    _edit(env, _text(env, spool=str(tmp_path / "elsewhere"), workers=3), 1)
    new = watch.poll()
    assert new is not None
    assert new.settings.workers == 3
    assert new.spool_dir == first.spool_dir
    assert events.actions() == ["config_spool_ignored", "config_reloaded"]
    assert events.seen[0][1] == logs.WARNING


def test_a_vanished_file_keeps_the_config_in_force(env: SpoolEnv) -> None:
    events = Events()
    first = load_config(env.config)
    watch = ConfigWatch(first, log=events)
    env.config.unlink()
    assert watch.poll() is None
    assert watch.config is first
    assert events.actions() == ["config_refused"]
