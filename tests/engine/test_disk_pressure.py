"""Disk pressure on a real, small filesystem (a 4 MiB tmpfs holding the spool).

Below the configured free-space minimum, submit refuses with one clear line
and writes nothing. When the disk fills while a job runs, finishing it fails
with ENOSPC: the job stays in running/, the runner retries with growing
backoff (a handful of finish_error lines, not thousands), and the job
completes once space returns. Logs live outside the small filesystem so the
evidence survives the full disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobspool.model import Job
from jobspool.spool import Spool
from tests.conftest import RunnerProcess, SpoolEnv, wait_until
from tests.support.hostile import files_under, job_names
from tests.support.smallfs import fill, free_bytes, mount_tmpfs, unmount

SIZE = 4 << 20
GATE = {"class": "tests.support.testjobs.Gate", "allowed_methods": ["wait"]}
PAGE = 4096


@pytest.fixture
def small_fs(env: SpoolEnv, tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "fs"
    mount_tmpfs(where, f"size={SIZE},nr_inodes=4096")
    try:
        yield where
    finally:
        for runner in env.runners:  # nothing may hold the mount when it goes
            runner.kill()
        unmount(where)


def use_small_spool(env: SpoolEnv, fs: Path, logs: Path, **changes: Any) -> Path:
    spool = fs / "spool"
    env.write_config(
        spool=str(spool),
        logs={"dir": str(logs)},
        allowed_jobs={**env.settings["allowed_jobs"], "Gate": GATE},
        **changes,
    )
    env.spool = spool  # the env helpers (status_of, record, files) look here
    return spool


def error_lines(logs: Path, action: str) -> list[str]:
    path = logs / "background_jobs_errors.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return [line for line in text.splitlines() if f" {action} " in line]


# ---------------------------------------------------------------- admission


def test_submit_refuses_below_the_free_space_minimum_and_writes_nothing(
    env: SpoolEnv, small_fs: Path, tmp_path: Path
) -> None:
    spool = use_small_spool(
        env, small_fs, tmp_path / "logs", min_free_bytes=8 << 20, min_free_inodes=0
    )
    initialised = files_under(small_fs)  # the spool's marker, from `jobspool init`
    out = env.runjob("SampleJob", "process", "p1", "--config", str(env.config))
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith(f"runjob: error: spool {spool} has "), lines[0]
    assert lines[0].endswith(f"bytes free; submit needs {8 << 20}"), lines[0]

    env.write_config(min_free_bytes=0, min_free_inodes=100_000)
    out = env.runjob("SampleJob", "process", "p1", "--config", str(env.config))
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert "inodes free; submit needs more" in out.stderr, out.stderr
    assert files_under(small_fs) == initialised
    assert not (tmp_path / "logs" / "background_jobs.log").exists()

    # Above both minimums the same command is accepted: the refusals were the limits.
    env.write_config(min_free_bytes=1 << 20, min_free_inodes=100)
    out = env.runjob("SampleJob", "process", "p1", "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    assert job_names(env, "pending") == [f"{out.stdout.strip()}.json"]


# ---------------------------------------------------------------- full disk


def start_gated_job(env: SpoolEnv, tmp_path: Path, padding: int) -> tuple[RunnerProcess, str]:
    """Submit a Gate job, start a runner, wait until the job is running."""
    job = Job(
        job="Gate",
        method="wait",
        params=[str(tmp_path / "started"), str(tmp_path / "release"), "p" * padding],
        id="gated",
    )
    job_id = Spool(env.spool, durable=False).submit(job)
    runner = env.start_runner()
    wait_until((tmp_path / "started").exists, 20, "the gated job to start")
    env.wait_status(job_id, "running")
    return runner, job_id


def test_a_full_disk_keeps_the_finish_in_running_until_space_returns(
    env: SpoolEnv, small_fs: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    use_small_spool(env, small_fs, logs, min_free_bytes=0, min_free_inodes=0, lease_seconds=30)
    # The record (64 KiB of padding) cannot be rewritten in 16 KiB, while the
    # attempt's small report and the heartbeats still fit.
    runner, job_id = start_gated_job(env, tmp_path, padding=64 << 10)
    filler = small_fs / "filler"
    fill(filler, leave=4 * PAGE)
    assert free_bytes(small_fs) <= 5 * PAGE
    (tmp_path / "release").touch()

    wait_until(lambda: len(error_lines(logs, "finish_error")) >= 3, 20, "three finish errors")
    claim = job_names(env, "running")
    assert len(claim) == 1 and claim[0].startswith(f"{job_id}~"), claim
    assert job_names(env, "completed") == []
    assert runner.proc.poll() is None, runner.stderr()

    filler.unlink()
    record = env.wait_status(job_id, "completed", timeout=20)
    assert [a["outcome"] for a in record["attempts"]] == ["succeeded"]
    assert record["result"] == f"released after {64 << 10} bytes of padding"
    count = len(error_lines(logs, "finish_error"))
    assert 3 <= count <= 4, f"{count} finish_error lines: the retry is not backing off"
    assert "No space left on device" in error_lines(logs, "finish_error")[0]
    assert runner.stop() == 0, runner.stderr()
    assert "Traceback" not in runner.stderr()
    assert {s: job_names(env, s) for s in ("pending", "running", "failed", "cancelled")} == {
        "pending": [],
        "running": [],
        "failed": [],
        "cancelled": [],
    }
    assert job_names(env, "completed") == [f"{job_id}.json"]
    assert os.listdir(env.spool / "runners") == [], "heartbeat leftovers after a clean stop"
    assert [n for n in os.listdir(env.spool / "tmp")] == []


def hold(runner: RunnerProcess, seconds: float) -> None:
    """Watch the runner for seconds; fail as soon as it exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if runner.proc.poll() is not None:
            pytest.fail(f"the runner exited with {runner.proc.returncode}:\n{runner.stderr()}")
        time.sleep(0.1)


def test_a_disk_full_past_the_lease_neither_kills_the_runner_nor_litters(
    env: SpoolEnv, small_fs: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    use_small_spool(env, small_fs, logs, min_free_bytes=0, min_free_inodes=0, lease_seconds=2)
    runner, job_id = start_gated_job(env, tmp_path, padding=0)
    filler = small_fs / "filler"
    fill(filler)
    assert free_bytes(small_fs) == 0

    hold(runner, 2 + 2.0)  # heartbeats fail for longer than the lease
    filler.unlink()
    (tmp_path / "release").touch()

    record = env.wait_status(job_id, "completed", timeout=30)
    assert record["attempts"][-1]["outcome"] == "succeeded", record["attempts"]
    assert runner.proc.poll() is None, runner.stderr()
    assert runner.stop() == 0, runner.stderr()
    assert "Traceback" not in runner.stderr()
    assert job_names(env, "running") == [] and job_names(env, "pending") == []
    assert job_names(env, "completed") == [f"{job_id}.json"]
    left = os.listdir(env.spool / "runners")
    assert left == [], f"{len(left)} heartbeat files left behind: {sorted(left)[:5]}"
