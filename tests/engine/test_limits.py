"""Every attempt runs under limits, and nothing it starts outlives it.

F9: an attempt had no limit on memory, CPU time, open files, processes or
output (2 GB allocated, 300 forks, 1 GB printed against a 1 MiB log cap),
and a double fork plus ``setsid`` escaped both the timeout kill and the
runner's death. Now each limit is set by the kernel on the attempt before
its job runs (spool-wide ``limits`` with per-job overrides), an attempt
stopped by one is recorded as ``LimitExceeded`` naming it, and the fork
server, a subreaper, kills whatever an ended attempt left behind. Real
runners, real attempts, real limits.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from jobspool.config import load_config
from jobspool.errors import ConfigError
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv, wait_until
from tests.support.hostile_jobs import HOSTILE_JOBS
from tests.support.spoolkit import config, is_gone, job_log, kill_quietly, log_text, read_int


def _allow(env: SpoolEnv, job: str, limits: dict[str, Any] | None = None) -> None:
    entry = {**HOSTILE_JOBS[job], **({"limits": limits} if limits else {})}
    env.write_config(allowed_jobs={**env.settings["allowed_jobs"], job: entry})


def _one_attempt(env: SpoolEnv, job_id: str, status: str) -> dict[str, Any]:
    env.burst()
    [attempt] = env.record(status, job_id)["attempts"]
    return dict(attempt)


def _limit_exceeded(attempt: dict[str, Any], text: str) -> None:
    assert attempt["outcome"] == "failed", attempt
    assert attempt["error"]["type"] == "LimitExceeded", attempt["error"]
    assert text in attempt["error"]["message"], attempt["error"]["message"]


# ---------------------------------------------------------------- the limits


def test_cpu_time_is_limited(env: SpoolEnv) -> None:
    _allow(env, "Hog", {"cpu_seconds": 1})
    job_id = run_background_job("Hog", "spin", [6.0], timeout=25, config=config(env))
    attempt = _one_attempt(env, job_id, "failed")
    _limit_exceeded(attempt, "cpu time limit of 1s reached")
    assert attempt["signal"] == signal.SIGXCPU


def test_memory_is_limited(env: SpoolEnv) -> None:
    _allow(env, "Hog", {"memory_mb": 200})
    job_id = run_background_job("Hog", "allocate", [1024], config=config(env))
    attempt = _one_attempt(env, job_id, "failed")
    _limit_exceeded(attempt, "memory limit of 200 MB reached (MemoryError")


def test_open_files_are_limited(env: SpoolEnv) -> None:
    _allow(env, "Hog", {"open_files": 64})
    job_id = run_background_job("Hog", "open_files", [500], config=config(env))
    attempt = _one_attempt(env, job_id, "failed")
    _limit_exceeded(attempt, "open files limit of 64 reached")


def test_processes_are_limited_and_none_survives(env: SpoolEnv, tmp_path: Path) -> None:
    _allow(env, "Hog", {"processes": 10})
    pidfile = tmp_path / "forked"
    job_id = run_background_job("Hog", "fork", [100, str(pidfile)], config=config(env))
    attempt = _one_attempt(env, job_id, "failed")
    _limit_exceeded(attempt, "process limit of 10 reached")
    assert int(Path(f"{pidfile}.count").read_text()) < 10
    forked = [int(p) for p in pidfile.read_text().split()]
    try:
        wait_until(lambda: all(is_gone(p) for p in forked), 10, "the forked children to die")
    finally:
        kill_quietly(*forked)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_output_is_capped_while_the_job_writes(
    env: SpoolEnv, tmp_path: Path, start_method: str
) -> None:
    """The cap holds at every write, not only when the runner next looks."""
    cap = 1 << 20
    env.write_config(start_method=start_method)
    _allow(env, "Printer", {"output_bytes": cap})
    count = tmp_path / "written"
    job_id = run_background_job("Printer", "flood", [64 << 20, str(count)], config=config(env))
    attempt = _one_attempt(env, job_id, "failed")
    _limit_exceeded(attempt, f"output limit of {cap} bytes reached")
    assert attempt["signal"] == signal.SIGXFSZ
    assert int(count.read_text()) <= cap
    assert len(job_log(env, job_id)) <= cap


def test_a_job_within_its_limits_runs_and_per_job_limits_override(env: SpoolEnv) -> None:
    env.write_config(limits={"cpu_seconds": 1, "memory_mb": 64, "open_files": 64})
    _allow(env, "Hog", {"memory_mb": 400})
    small = run_background_job("Typed", "add", [2, 3], config=config(env))
    big = run_background_job("Hog", "allocate", [200], config=config(env))
    env.burst()
    assert env.record("completed", small)["result"] == 5
    assert env.record("completed", big)["result"] == 200


def test_the_runner_says_how_attempts_are_held(env: SpoolEnv) -> None:
    run_background_job("Typed", "add", [1, 1], config=config(env))
    env.burst()
    assert "attempt_containment tree=subreaper process_limit=" in log_text(env)


# ---------------------------------------------------------------- nothing outlives its attempt


def test_an_escaped_grandchild_dies_at_the_timeout(env: SpoolEnv, tmp_path: Path) -> None:
    """Double fork, setsid, no marker in its environment: it still dies."""
    _allow(env, "Escaper")
    pidfile = tmp_path / "escaped.pid"
    job_id = run_background_job("Escaper", "escape", [str(pidfile)], timeout=2, config=config(env))
    runner = env.start_runner()
    escaped = read_int(pidfile)
    try:
        assert os.getsid(escaped) == escaped  # it left the attempt's session
        record = env.wait_status(job_id, "failed")
        assert record["attempts"][0]["outcome"] == "timed_out"
        wait_until(lambda: is_gone(escaped), 10, "the escaped grandchild to die")
    finally:
        kill_quietly(escaped)
    runner.stop()


def test_an_escaped_grandchild_dies_with_its_runner(env: SpoolEnv, tmp_path: Path) -> None:
    _allow(env, "Escaper")
    pidfile = tmp_path / "escaped.pid"
    run_background_job("Escaper", "escape", [str(pidfile)], config=config(env))
    runner = env.start_runner()
    escaped = read_int(pidfile)
    try:
        runner.kill()  # SIGKILL: the fork server notices and takes everything along
        wait_until(lambda: is_gone(escaped), 10, "the escaped grandchild to die")
    finally:
        kill_quietly(escaped)


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"limits": {"memory": 100}}, "limits.memory: unknown key"),
        ({"limits": {"cpu_seconds": 0}}, "limits.cpu_seconds: Input should be greater than 0"),
        (
            {"allowed_jobs": {"Hog": {**HOSTILE_JOBS["Hog"], "limits": {"forks": 3}}}},
            "allowed_jobs.Hog.limits.forks: unknown key",
        ),
    ],
)
def test_limits_in_the_config_are_checked(
    env: SpoolEnv, settings: dict[str, Any], message: str
) -> None:
    env.write_config(**settings)
    with pytest.raises(ConfigError) as caught:
        load_config(env.config)
    assert message in str(caught.value)


def test_job_limits_override_the_spool_wide_ones(env: SpoolEnv) -> None:
    env.write_config(limits={"cpu_seconds": 5, "processes": 50}, logs={"job_log_max_bytes": 4096})
    _allow(env, "Hog", {"processes": 8, "output_bytes": 2048})
    cfg = load_config(env.config)
    assert cfg.limits("Hog") == {"cpu_seconds": 5, "processes": 8, "output_bytes": 2048}
    # Output is capped at the job log's size cap unless set.
    assert cfg.limits("Typed") == {"cpu_seconds": 5, "processes": 50, "output_bytes": 4096}
