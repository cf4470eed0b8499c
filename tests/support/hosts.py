"""Runners that play other hosts, bindfs mounts, and reading runner registrations.

One machine plays several hosts: a runner started with ``JOBSPOOL_HOST``
judges runners of other hosts by their heartbeats only, never by their
locks. Two bindfs mounts of one directory stand in for two machines sharing
a network filesystem: a change made through one mount raises no inotify
event on the other.

Timing helpers here poll every 10 ms (``measure_until``), finer than
``wait_until``'s growing delay, because the tests compare the times they
measure with the lease.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jobspool.cli import runner_argv
from jobspool.names import RunningName
from tests.conftest import RunnerProcess, SpoolEnv, wait_until

# Extra allow-list entries for the classes the liveness tests appended to testjobs.
LIVENESS_JOBS: dict[str, Any] = {
    "RunnerKiller": {
        "class": "tests.support.testjobs.RunnerKiller",
        "allowed_methods": ["strike"],
        "retry": {"max_attempts": 3, "delay_seconds": 0, "jitter": 0},
    },
    "Lingerer": {"class": "tests.support.testjobs.Lingerer", "allowed_methods": ["linger"]},
}


def allow_liveness_jobs(env: SpoolEnv) -> None:
    env.write_config(allowed_jobs={**env.settings["allowed_jobs"], **LIVENESS_JOBS})


class HostRunner(RunnerProcess):
    """A real runner daemon whose host identity is ``host`` (JOBSPOOL_HOST)."""

    def __init__(self, env: SpoolEnv, args: list[str], host: str) -> None:
        # Same process as RunnerProcess, with one more variable in its environment.
        self.env = env
        self.host = host
        cmd = runner_argv(str(env.config), "--quiet", *args)
        self.stderr_path = env.root / f"runner-{host}-{time.monotonic_ns()}.stderr"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed by wait()
        environ = {**env.environ(), "JOBSPOOL_HOST": host}
        self.proc = subprocess.Popen(
            cmd, env=environ, stderr=self._stderr, stdout=subprocess.DEVNULL, cwd=env.root
        )


def start_as(env: SpoolEnv, host: str, *args: str) -> HostRunner:
    """Start a runner playing ``host``; the env fixture kills it at teardown."""
    runner = HostRunner(env, list(args), host)
    env.runners.append(runner)
    return runner


def registrations(spool: Path) -> dict[str, dict[str, Any]]:
    """Every runner heartbeat file in the spool, by runner id."""
    out: dict[str, dict[str, Any]] = {}
    folder = spool / "runners"
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(folder):
            if name.endswith(".json") and not name.startswith("."):
                with contextlib.suppress(OSError, ValueError):
                    out[name[: -len(".json")]] = json.loads((folder / name).read_text())
    return out


def ids_of(spool: Path, pid: int) -> set[str]:
    """Runner ids registered by process ``pid`` right now."""
    return {rid for rid, beat in registrations(spool).items() if beat.get("pid") == pid}


def _exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_registered(spool: Path, pid: int, beats: int = 3, timeout: float = 30.0) -> str:
    """The id of runner ``pid`` once it has beaten ``beats`` times (its loop is running).

    A runner that exits first fails the wait at once (its stderr says why).
    """

    def ready() -> str | None:
        for rid, beat in registrations(spool).items():
            if beat.get("pid") == pid and int(beat.get("beat", 0)) >= beats:
                return rid
        if _exited(pid):
            raise AssertionError(f"runner pid {pid} exited before it registered")
        return None

    found = wait_until(ready, timeout, f"runner pid {pid} to register and beat {beats} times")
    assert found is not None
    return found


def claims(spool: Path) -> list[RunningName]:
    out = []
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(spool / "running"):
            parsed = RunningName.parse(name)
            if parsed is not None:
                out.append(parsed)
    return out


def claims_of(spool: Path, runner_id: str) -> list[RunningName]:
    return [c for c in claims(spool) if c.runner == runner_id]


def listed_pids(spool: Path, runner_id: str) -> set[int]:
    """Attempt pids that runner's heartbeat lists."""
    beat = registrations(spool).get(runner_id, {})
    return {j["pid"] for j in beat.get("jobs", []) if isinstance(j.get("pid"), int)}


def measure_until(cond: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until cond() is truthy, polled every 10 ms; fails after timeout."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - start


# ---------------------------------------------------------------- bindfs


def _unmount(mnt: Path) -> None:
    """Unmount, retrying while the mount is busy; lazily as the last resort."""
    deadline = time.monotonic() + 15
    while os.path.ismount(mnt):
        # umount (not fusermount): root may, and it does not depend on
        # which FUSE generation's helper the machine happens to have.
        out = subprocess.run(
            ["umount", str(mnt)], check=False, capture_output=True, text=True, timeout=30
        )
        if out.returncode == 0:
            break
        if time.monotonic() > deadline:
            subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True, timeout=30)
            break
        time.sleep(0.2)
    wait_until(lambda: not os.path.ismount(mnt), 10, f"{mnt} to be unmounted")


@contextlib.contextmanager
def bind_mount(src: Path, mnt: Path) -> Iterator[Path]:
    """A bindfs view of ``src`` at ``mnt``; a mount that cannot be made fails the test."""
    for tool in ("bindfs", "umount"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (Debian packages: bindfs, mount)")
    mnt.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["bindfs", str(src), str(mnt)], check=False, capture_output=True, text=True, timeout=30
    )
    if out.returncode != 0 or not os.path.ismount(mnt):
        pytest.fail(f"cannot bindfs-mount {src} at {mnt}: rc={out.returncode} {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        _unmount(mnt)


@contextlib.contextmanager
def two_hosts_on(env: SpoolEnv, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Two bindfs mounts of the env's spool, one per "host"; the runners the
    env started are killed before the mounts go."""
    with (
        bind_mount(env.spool, tmp_path / "mnt-a") as a,
        bind_mount(env.spool, tmp_path / "mnt-b") as b,
    ):
        try:
            yield a, b
        finally:
            for runner in env.runners:
                runner.kill()
