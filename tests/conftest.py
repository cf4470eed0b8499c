"""Shared fixtures: a private spool per test, real runner processes, leak checks.

Every test gets its own directory holding an ``allowed_jobs.yaml`` and a
spool, initialised as ``jobspool init`` does; nothing touches the
repository's own spool/. Runners are real
``python -m jobspool.cli runner`` processes. Waiting is bounded polling.
After each test, no child process and no extra thread may be left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import yaml

from jobspool.cli import runner_argv
from jobspool.config import load_config
from jobspool.initspool import init_spool

REPO = Path(__file__).resolve().parent.parent
# The test jobs (tests.support.testjobs) and the demo jobs/ live in the
# repository, which the install does not put on sys.path: attempts that an
# in-process runner forks must find them as the runner processes do.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
)
T = TypeVar("T")

TEST_JOBS: dict[str, Any] = {
    "SampleJob": {"class": "jobs.SampleJob", "allowed_methods": ["process"]},
    "ExportJob": {"allowed_methods": ["export"]},
    "Marker": {"class": "tests.support.testjobs.Marker", "allowed_methods": ["touch"]},
    "Ledger": {"class": "tests.support.testjobs.Ledger", "allowed_methods": ["record"]},
    "Flaky": {
        "class": "tests.support.testjobs.Flaky",
        "allowed_methods": ["run", "ask_retry"],
        "retry": {"max_attempts": 3, "delay_seconds": 0.3, "backoff": "exponential", "jitter": 0},
    },
    "Failing": {
        "class": "tests.support.testjobs.Failing",
        "allowed_methods": ["bad", "crash"],
        "retry": {"max_attempts": 2, "delay_seconds": 0, "non_retryable": ["BadInput"]},
    },
    "Sleeper": {"class": "tests.support.testjobs.Sleeper", "allowed_methods": ["sleep"]},
    "Typed": {"class": "tests.support.testjobs.Typed", "allowed_methods": ["add", "greet"]},
    "Progressing": {"class": "tests.support.testjobs.Progressing", "allowed_methods": ["steps"]},
    "Odd": {"class": "tests.support.testjobs.Odd", "allowed_methods": ["weird"]},
}


def wait_until(cond: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll cond until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


class RunnerProcess:
    """A real runner daemon in its own process."""

    def __init__(self, env: SpoolEnv, args: list[str]) -> None:
        self.env = env
        cmd = runner_argv(str(env.config), "--quiet", *args)
        self.stderr_path = env.root / f"runner-{time.monotonic_ns()}.stderr"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, env=env.environ(), stderr=self._stderr, stdout=subprocess.DEVNULL, cwd=env.root
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._stderr.close()

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


class SpoolEnv:
    """A private project directory: allowed_jobs.yaml + spool/ + helpers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "allowed_jobs.yaml"
        self.spool = root / "spool"
        self.settings: dict[str, Any] = {
            "spool": "spool",
            "workers": 2,
            "timeout_seconds": 30,
            "heartbeat_seconds": 0.2,
            "lease_seconds": 3,
            "poll_seconds": 0.5,
            "grace_seconds": 5,
            "retry": {"max_attempts": 3, "delay_seconds": 0.2, "jitter": 0},
            "allowed_jobs": TEST_JOBS,
        }
        self.write_config()
        self.init_spool()
        self.runners: list[RunnerProcess] = []

    def write_config(self, **changes: Any) -> None:
        """Rewrite allowed_jobs.yaml; a new spool path is initialised at once."""
        self.settings.update(changes)
        self.config.write_text(yaml.safe_dump(self.settings, sort_keys=False))
        if "spool" in changes:
            self.init_spool()

    def init_spool(self) -> None:
        """Make the config's spool a spool, as a user does once with `jobspool
        init`: runners, the dashboard and submitters refuse a directory that
        has no spool marker."""
        cfg = load_config(self.config, use_env=False)
        init_spool(cfg.spool_dir, log_dir=cfg.log_dir)

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSPOOL_")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        return env

    def cli(
        self, *args: str, prog: str = "jobspool", check: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        module = "jobspool.cli" if prog == "jobspool" else "jobspool.runjob"
        cmd = [sys.executable, "-m", module, *args]
        return subprocess.run(
            cmd,
            env=self.environ(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def runjob(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cli(*args, prog="runjob")

    def start_runner(self, *args: str) -> RunnerProcess:
        runner = RunnerProcess(self, list(args))
        self.runners.append(runner)
        return runner

    def burst(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "runner", "--config", str(self.config), "--burst", "--quiet", *args, timeout=timeout
        )

    def files(self, status: str) -> list[str]:
        d = self.spool / status
        return sorted(n for n in os.listdir(d) if n.endswith(".json") and not n.startswith("."))

    def record(self, status: str, job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.spool / status / f"{job_id}.json").read_text())
        return data

    def status_of(self, job_id: str) -> str | None:
        for status in ("completed", "failed", "cancelled", "pending"):
            if (self.spool / status / f"{job_id}.json").exists():
                return status
        if any(n.startswith(job_id + "~") for n in os.listdir(self.spool / "running")):
            return "running"
        return None

    def wait_status(self, job_id: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
        wait_until(
            lambda: self.status_of(job_id) == status,
            timeout,
            f"job {job_id} to be {status} (is {self.status_of(job_id)})",
        )
        if status == "running":
            return {}
        return self.record(status, job_id)

    def drop(self, name: str, content: str | bytes) -> Path:
        """Drop a file into pending/ the way a careful writer does (tmp + rename)."""
        (self.spool / "pending").mkdir(parents=True, exist_ok=True)
        (self.spool / "tmp").mkdir(parents=True, exist_ok=True)
        tmp = self.spool / "tmp" / f"drop-{name}"
        data = content.encode() if isinstance(content, str) else content
        tmp.write_bytes(data)
        dst = self.spool / "pending" / name
        os.rename(tmp, dst)
        return dst


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SpoolEnv]:
    e = SpoolEnv(tmp_path)
    try:
        yield e
    finally:
        for runner in e.runners:
            runner.kill()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves a child process or a thread behind."""
    threads_before = set(threading.enumerate())
    yield
    me = psutil.Process()

    def leftovers() -> list[psutil.Process]:
        return [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]

    try:
        wait_until(lambda: not leftovers(), 10, "child processes to exit")
    except AssertionError:
        left = leftovers()
        for proc in left:
            proc.kill()
        pytest.fail(f"test leaked processes: {[p.cmdline() for p in left]}")
    extra = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    if extra:
        wait_until(lambda: not [t for t in extra if t.is_alive()], 5, "threads to end")
