"""Pause and resume through real runner processes, the CLI and the files in control/."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from jobspool.config import load_config
from jobspool.submit import run_background_job
from tests.conftest import TEST_JOBS, SpoolEnv, wait_until
from tests.support.hosts import start_as, two_hosts_on, wait_registered
from tests.support.spoolkit import assert_one_line_error, config, log_text, stop_clean

POLL = 0.5  # env's poll_seconds
GATE = {"class": "tests.support.testjobs.Gate", "allowed_methods": ["wait"]}


def _marker(env: SpoolEnv, tmp_path: Path, name: str) -> str:
    return run_background_job("Marker", "touch", [str(tmp_path / name)], config=config(env))


def _stays_pending(env: SpoolEnv, job_id: str, seconds: float) -> None:
    """Still pending after several poll periods (bounded: checked every 50 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert env.status_of(job_id) == "pending"
        time.sleep(0.05)


def test_paused_name_stays_pending_while_others_run_and_resume_lets_it_run(
    env: SpoolEnv, tmp_path: Path
) -> None:
    out = env.cli("pause", "Marker")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "paused: Marker"
    runner = env.start_runner()
    held = _marker(env, tmp_path, "held")
    other = run_background_job("Typed", "add", [1, 2], config=config(env))
    env.wait_status(other, "completed")
    _stays_pending(env, held, 4 * POLL)
    assert not (tmp_path / "held").exists()

    status = json.loads(env.cli("status", "--json", check=True).stdout)
    assert status["paused"]["spool"] is None
    assert list(status["paused"]["jobs"]) == ["Marker"]
    assert status["paused"]["jobs"]["Marker"]["via"] == "cli"
    assert status["paused"]["jobs"]["Marker"]["by"]
    text = env.cli("status", check=True).stdout
    assert "paused: 1 job name" in text and "  Marker  by " in text

    assert env.cli("resume", "Marker", check=True).stdout.strip() == "resumed: Marker"
    env.wait_status(held, "completed", timeout=4 * POLL + 5)
    stop_clean(runner)
    log = log_text(env)
    assert log.count("paused job_name=Marker") == 1
    assert log.count("resumed job_name=Marker") == 1


def test_whole_spool_pause_lets_running_attempts_finish_and_holds_the_rest(
    env: SpoolEnv, tmp_path: Path
) -> None:
    env.write_config(allowed_jobs={**TEST_JOBS, "Gate": GATE})
    runner = env.start_runner()
    started, release = tmp_path / "started", tmp_path / "release"
    gate = run_background_job("Gate", "wait", [str(started), str(release)], config=config(env))
    wait_until(started.exists, 20, "the gate job to start")
    env.cli("pause", check=True)
    # The runner learns of the pause asynchronously: a job queued before it
    # has read control/ (a rescan can find the job first) would be claimed.
    wait_until(
        lambda: "paused job_name=(spool)" in log_text(env), 10, "the runner to see the pause"
    )
    queued = run_background_job("Typed", "add", [1, 2], config=config(env))
    _stays_pending(env, queued, 2 * POLL)
    release.touch()
    env.wait_status(gate, "completed")  # the running attempt finished
    _stays_pending(env, queued, 3 * POLL)
    status = json.loads(env.cli("status", "--json", check=True).stdout)
    assert status["paused"]["spool"]["via"] == "cli"
    env.cli("resume", check=True)
    env.wait_status(queued, "completed", timeout=4 * POLL + 5)
    stop_clean(runner)


def test_burst_runner_exits_leaving_paused_jobs_pending(env: SpoolEnv, tmp_path: Path) -> None:
    """A paused job is not due work: a burst runner neither runs it nor spins on it."""
    env.cli("pause", "Marker", check=True)
    held = _marker(env, tmp_path, "held")
    other = run_background_job("Typed", "add", [2, 3], config=config(env))
    out = env.burst(timeout=30)
    assert out.returncode == 0, out.stderr
    assert env.status_of(other) == "completed"
    assert env.status_of(held) == "pending"


def test_unknown_name_is_one_line_with_did_you_mean_and_writes_nothing(env: SpoolEnv) -> None:
    out = env.cli("pause", "Markr")
    assert_one_line_error(out, "jobspool", "'Markr' is not in the allow-list; did you mean Marker?")
    out = env.cli("resume", "Nope")
    assert_one_line_error(out, "jobspool", "'Nope' is not in the allow-list")
    assert [n for n in os.listdir(env.spool / "control") if not n.startswith(".")] == []


def test_bad_pause_files_are_reported_and_never_obeyed(env: SpoolEnv, tmp_path: Path) -> None:
    control = env.spool / "control"
    (control / "pause~Marker.json").write_bytes(b"\x00not json")
    (control / "pause~Typed.json").mkdir()
    target = tmp_path / "elsewhere.json"
    target.write_text('{"kind": "pause"}')
    (control / "pause~__all__.json").symlink_to(target)

    status = json.loads(env.cli("status", "--json", check=True).stdout)
    assert status["paused"]["spool"] is None and status["paused"]["jobs"] == {}
    assert sorted(status["paused"]["refused"]) == [
        "pause~Marker.json",
        "pause~Typed.json",
        "pause~__all__.json",
    ]
    assert "refused control/pause~Typed.json: not a regular file" in env.cli("status").stdout

    marker = _marker(env, tmp_path, "ran")
    typed = run_background_job("Typed", "add", [1, 1], config=config(env))
    runner = env.start_runner()
    env.wait_status(marker, "completed")
    env.wait_status(typed, "completed")
    stop_clean(runner)
    assert target.read_text() == '{"kind": "pause"}'  # the link's target untouched
    moved = sorted(n for n in os.listdir(env.spool / "corrupt") if not n.endswith(".txt"))
    assert len(moved) == 3, moved
    assert log_text(env, "background_jobs_errors.log").count("control_refused") <= 3
    assert log_text(env).count("control_refused") == 3


def test_runners_on_two_hosts_both_obey_a_pause_within_a_poll_period(
    env: SpoolEnv, tmp_path: Path
) -> None:
    env.write_config(workers=4)
    with two_hosts_on(env, tmp_path) as (mnt_a, mnt_b):
        runners = [
            start_as(env, "host-a", "--spool", str(mnt_a)),
            start_as(env, "host-b", "--spool", str(mnt_b)),
        ]
        for r in runners:
            wait_registered(env.spool, r.pid)
        cfg_a = load_config(env.config, {"spool": str(mnt_a)})
        # Paused through host A's mount: host B sees no inotify event for it.
        out = env.cli("pause", "Marker", "--spool", str(mnt_a))
        assert out.returncode == 0, out.stderr
        paused_at = time.monotonic()
        wait_until(
            lambda: log_text(env).count("paused job_name=Marker") == 2, 10, "both runners to see it"
        )
        assert time.monotonic() - paused_at <= POLL + 1.0
        held = [
            run_background_job("Marker", "touch", [str(tmp_path / f"m{i}")], config=cfg_a)
            for i in range(6)
        ]
        _stays_pending(env, held[0], 4 * POLL)
        assert [env.status_of(j) for j in held] == ["pending"] * 6
        env.cli("resume", "Marker", "--spool", str(mnt_b), check=True)
        for job_id in held:
            env.wait_status(job_id, "completed", timeout=20)
        for r in runners:
            stop_clean(r)
