"""What happens after an attempt: retries with backoff, failures, crashes, timeouts."""

from __future__ import annotations

import itertools
from pathlib import Path

from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv, wait_until
from tests.support.spoolkit import (
    config,
    is_gone,
    job_log,
    kill_quietly,
    outcomes,
    read_int,
    stop_clean,
    when,
)


def _call_times(counter: Path) -> list[float]:
    return [float(line) for line in Path(f"{counter}.times").read_text().split()]


def test_flaky_job_is_retried_with_exponential_backoff(env: SpoolEnv, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    job_id = run_background_job("Flaky", "run", [str(counter), 2], config=config(env))
    runner = env.start_runner()
    rec = env.wait_status(job_id, "completed")
    stop_clean(runner)

    assert rec["result"] == 3
    assert outcomes(rec) == ["failed", "failed", "succeeded"]
    assert [a["number"] for a in rec["attempts"]] == [1, 2, 3]
    assert [a["error"]["message"] for a in rec["attempts"][:2]] == [
        "planned failure 1 of 2",
        "planned failure 2 of 2",
    ]
    assert rec["attempts"][2]["error"] is None
    assert (rec["error"], rec["reason"], rec["next_attempt_at"]) == (None, None, None)
    times = _call_times(counter)
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Policy: 0.3 s doubling, no jitter. Honoured, and not wildly late either.
    assert gaps[0] >= 0.3, gaps
    assert gaps[1] >= 0.6, gaps
    assert gaps[0] < 0.3 + 5, gaps
    assert gaps[1] < 0.6 + 5, gaps


def test_non_retryable_exception_fails_after_one_attempt(env: SpoolEnv) -> None:
    job_id = run_background_job("Failing", "bad", ["broken input"], config=config(env))
    result = env.burst()
    assert result.returncode == 0, result.stderr
    rec = env.record("failed", job_id)
    assert outcomes(rec) == ["failed"]
    assert rec["error"]["type"] == "BadInput"
    assert rec["error"]["message"] == "broken input"
    assert "BadInput" in rec["error"]["traceback"]
    assert rec["reason"] == "BadInput is not retryable"
    assert rec["next_attempt_at"] is None


def test_attempts_exhausted_fail_with_every_attempt_recorded(env: SpoolEnv, tmp_path: Path) -> None:
    policy_counter = tmp_path / "policy"
    override_counter = tmp_path / "override"
    cfg = config(env)
    by_policy = run_background_job("Flaky", "run", [str(policy_counter), 10], config=cfg)
    by_record = run_background_job(
        "Flaky", "run", [str(override_counter), 10], max_attempts=2, config=cfg
    )
    runner = env.start_runner()
    rec = env.wait_status(by_policy, "failed")
    short = env.wait_status(by_record, "failed")
    stop_clean(runner)

    assert outcomes(rec) == ["failed", "failed", "failed"]
    assert [a["number"] for a in rec["attempts"]] == [1, 2, 3]
    assert [a["error"]["message"] for a in rec["attempts"]] == [
        f"planned failure {n} of 10" for n in (1, 2, 3)
    ]
    assert rec["error"]["message"] == "planned failure 3 of 10"
    assert rec["reason"] == "failed on attempt 3 of 3"
    assert policy_counter.read_text() == "3"

    assert outcomes(short) == ["failed", "failed"]
    assert short["reason"] == "failed on attempt 2 of 2"
    assert override_counter.read_text() == "2"


def test_job_requested_retry_waits_the_delay_it_asked_for(env: SpoolEnv, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    job_id = run_background_job("Flaky", "ask_retry", [str(counter), 0.8], config=config(env))
    runner = env.start_runner()
    rec = env.wait_status(job_id, "completed")
    stop_clean(runner)

    assert rec["result"] == 2
    assert outcomes(rec) == ["retry", "succeeded"]
    first, second = rec["attempts"]
    assert first["error"]["type"] == "Retry"
    assert first["error"]["message"] == "not ready yet"
    gap = (when(second["started_at"]) - when(first["finished_at"])).total_seconds()
    # 0.8 s asked for (the policy's own backoff would be 0.3 s).
    assert 0.8 <= gap < 0.8 + 5, gap


def test_job_killed_by_a_signal_records_it_and_is_retried_per_policy(env: SpoolEnv) -> None:
    cfg = config(env)
    killed = run_background_job("Failing", "crash", ["kill"], config=cfg)
    exited = run_background_job("Failing", "crash", ["exit"], config=cfg)
    runner = env.start_runner()
    rec = env.wait_status(killed, "failed")
    rec_exit = env.wait_status(exited, "failed")
    stop_clean(runner)

    # Failing allows two attempts with no delay.
    assert outcomes(rec) == ["crashed", "crashed"]
    assert [a["signal"] for a in rec["attempts"]] == [9, 9]
    assert [a["exit_code"] for a in rec["attempts"]] == [None, None]
    assert "SIGKILL" in rec["error"]["message"]
    assert rec["reason"] == "crashed on attempt 2 of 2"

    assert outcomes(rec_exit) == ["crashed", "crashed"]
    assert [a["exit_code"] for a in rec_exit["attempts"]] == [3, 3]
    assert [a["signal"] for a in rec_exit["attempts"]] == [None, None]


def test_burst_runs_a_due_retry_before_exiting(env: SpoolEnv) -> None:
    """--burst exits only when nothing is due; a retry with no delay is due at once.

    Without the watcher the runner must still know about the job it just put
    back in pending/ (the rescan is the correctness path, events only latency).
    """
    job_id = run_background_job("Failing", "crash", ["kill"], config=config(env))
    result = env.burst("--no-watch")
    assert result.returncode == 0, result.stderr
    assert env.status_of(job_id) == "failed"
    assert outcomes(env.record("failed", job_id)) == ["crashed", "crashed"]


def test_non_json_result_is_stored_as_repr_with_a_warning(env: SpoolEnv) -> None:
    job_id = run_background_job("Odd", "weird", [], config=config(env))
    result = env.burst()
    assert result.returncode == 0, result.stderr
    rec = env.record("completed", job_id)
    assert rec["result"] == "{1, 2, 3}"
    assert outcomes(rec) == ["succeeded"]
    assert "warning: result of type set is not JSON; stored as repr" in job_log(env, job_id)


def test_timeout_kills_the_whole_process_tree(env: SpoolEnv, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    started = tmp_path / "started.pid"
    job_id = run_background_job(
        "Sleeper",
        "sleep",
        [30, str(pidfile), str(started)],
        timeout=1.0,
        max_attempts=1,
        config=config(env),
    )
    runner = env.start_runner()
    grandchild = read_int(pidfile)
    attempt_pid = read_int(started)
    try:
        assert not is_gone(grandchild)
        rec = env.wait_status(job_id, "failed", timeout=15)
        wait_until(lambda: is_gone(grandchild), 5, "the grandchild to be killed")
        wait_until(lambda: is_gone(attempt_pid), 5, "the attempt process to be killed")
    finally:
        kill_quietly(grandchild, attempt_pid)
    stop_clean(runner)
    assert outcomes(rec) == ["timed_out"]
    assert rec["attempts"][0]["pid"] == attempt_pid
    assert rec["error"]["type"] == "Timeout"
    assert 1.0 <= rec["attempts"][0]["duration_seconds"] < 5.0
    assert "tick" in job_log(env, job_id)
