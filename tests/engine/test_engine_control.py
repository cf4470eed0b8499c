"""People and signals: cancel, retry, SIGTERM hand-back, recovery of a dead runner."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil

from jobspool.model import Job
from jobspool.submit import run_background_job
from tests.conftest import RunnerProcess, SpoolEnv, wait_until
from tests.support.spoolkit import (
    allow_extra_jobs,
    assert_one_line_error,
    config,
    heartbeat_jobs,
    is_gone,
    kill_quietly,
    log_text,
    outcomes,
    read_int,
    stop_clean,
)


def _cli(env: SpoolEnv, *args: str) -> tuple[int, str, str]:
    out = env.cli(*args, "--config", str(env.config))
    return out.returncode, out.stdout, out.stderr


def test_cancel_pending_job_moves_it_at_once(env: SpoolEnv, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    job_id = run_background_job("Marker", "touch", [str(marker)], config=config(env))
    code, out, err = _cli(env, "cancel", job_id)
    assert (code, err) == (0, "")
    assert out == f"{job_id}: cancelled\n"
    rec = env.record("cancelled", job_id)
    assert env.status_of(job_id) == "cancelled"
    assert [h["action"] for h in rec["history"]] == ["submitted", "cancelled"]
    assert rec["history"][1]["via"] == "cli"
    assert rec["history"][1]["by"]
    assert rec["attempts"] == []
    assert env.burst().returncode == 0
    assert not marker.exists()
    assert env.status_of(job_id) == "cancelled"


def test_cancel_running_job_kills_its_tree_within_a_second(env: SpoolEnv, tmp_path: Path) -> None:
    pidfile, started = tmp_path / "grandchild.pid", tmp_path / "started.pid"
    job_id = run_background_job(
        "Sleeper", "sleep", [30, str(pidfile), str(started)], config=config(env)
    )
    runner = env.start_runner()
    grandchild, attempt_pid = read_int(pidfile), read_int(started)
    try:
        env.wait_status(job_id, "running")
        code, out, err = _cli(env, "cancel", job_id)
        asked = time.monotonic()
        assert (code, err) == (0, "")
        assert out == f"{job_id}: running; cancel requested from its runner\n"
        rec = env.wait_status(job_id, "cancelled", timeout=10)
        took = time.monotonic() - asked
        wait_until(
            lambda: is_gone(attempt_pid) and is_gone(grandchild),
            2,
            "the attempt's process tree to die",
        )
    finally:
        kill_quietly(grandchild, attempt_pid)
    assert took < 2.0, f"cancel took {took:.2f}s"
    assert outcomes(rec) == ["cancelled"]
    assert rec["reason"] == "cancelled while running"
    assert [h["action"] for h in rec["history"]] == ["submitted", "cancelled"]
    assert rec["history"][1]["via"] == "cli"
    # The request is cleared just after the cancelled record is published,
    # and the cancel is logged only after that.
    wait_until(
        lambda: list((env.spool / "control").iterdir()) == [], 10, "the request to be cleared"
    )
    wait_until(lambda: f"cancelled job={job_id} " in log_text(env), 10, "the cancel to be logged")
    stop_clean(runner)


def test_cancel_of_a_finished_or_unknown_job_is_refused(env: SpoolEnv) -> None:
    job_id = run_background_job("SampleJob", "process", ["x"], config=config(env))
    assert env.burst().returncode == 0
    before = env.record("completed", job_id)
    out = env.cli("cancel", job_id, "--config", str(env.config))
    assert_one_line_error(
        out, "jobspool", f"job {job_id} is completed; only pending or running jobs can be cancelled"
    )
    assert env.record("completed", job_id) == before
    assert env.files("cancelled") == []
    out = env.cli("cancel", "20200101-000000-000000-00000000", "--config", str(env.config))
    assert_one_line_error(out, "jobspool", "no job with id '20200101-000000-000000-00000000'")


def test_retry_sends_a_failed_job_back_and_it_completes(env: SpoolEnv, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    job_id = run_background_job(
        "Flaky", "run", [str(counter), 1], max_attempts=1, config=config(env)
    )
    assert env.burst().returncode == 0
    failed = env.record("failed", job_id)
    assert outcomes(failed) == ["failed"]

    code, out, err = _cli(env, "retry", job_id)
    assert (code, out, err) == (0, f"{job_id}: back in pending\n", "")
    pending = env.record("pending", job_id)
    assert env.status_of(job_id) == "pending"
    assert outcomes(pending) == ["failed"]  # history of attempts is kept
    assert (pending["error"], pending["reason"]) == (None, None)
    assert Job.model_validate(pending).attempts_used == 0  # fresh attempts

    assert env.burst().returncode == 0
    done = env.record("completed", job_id)
    assert done["result"] == 2
    assert outcomes(done) == ["failed", "succeeded"]
    assert [h["action"] for h in done["history"]] == ["submitted", "retried"]
    assert done["history"][1]["via"] == "cli"


def test_retry_of_a_cancelled_job_runs_it(env: SpoolEnv, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    job_id = run_background_job("Marker", "touch", [str(marker)], config=config(env))
    assert _cli(env, "cancel", job_id)[0] == 0
    code, out, _err = _cli(env, "retry", job_id)
    assert (code, out) == (0, f"{job_id}: back in pending\n")
    assert env.burst().returncode == 0
    done = env.record("completed", job_id)
    assert marker.read_text() == "ran"
    assert [h["action"] for h in done["history"]] == ["submitted", "cancelled", "retried"]
    assert outcomes(done) == ["succeeded"]


def test_retry_of_a_completed_or_pending_job_is_refused(env: SpoolEnv) -> None:
    cfg = config(env)
    done = run_background_job("SampleJob", "process", ["x"], config=cfg)
    assert env.burst().returncode == 0
    waiting = run_background_job("SampleJob", "process", ["y"], config=cfg)
    out = env.cli("retry", done, "--config", str(env.config))
    assert_one_line_error(out, "jobspool", "only failed or cancelled jobs can be retried")
    out = env.cli("retry", waiting, "--config", str(env.config))
    assert_one_line_error(out, "jobspool", f"job {waiting} is pending")
    assert env.status_of(done) == "completed"
    assert env.status_of(waiting) == "pending"


def _lingering_job(env: SpoolEnv, tmp_path: Path, *, spawn: bool, max_attempts: int = 3) -> str:
    """A job whose first attempt runs 30 s (so only we can end it) and later ones 0 s."""
    allow_extra_jobs(env)
    return run_background_job(
        "Lingerer",
        "linger",
        [str(tmp_path), 30, 0, spawn],
        max_attempts=max_attempts,
        config=config(env),
    )


def _cut_off_runner(env: SpoolEnv, runner: RunnerProcess, attempt_pid: int) -> list[psutil.Process]:
    """Kill a runner and its fork server at once, as a power cut of just them would.

    Both are frozen first, so neither can clean up; the attempt, in its own
    session, lives on as an orphan. Returns the fork server's processes.
    """
    wait_until(
        lambda: any(j.get("pid") == attempt_pid for j in heartbeat_jobs(env)),
        10,
        "the heartbeat to list the attempt",
    )
    helpers = psutil.Process(runner.pid).children()
    frozen = [psutil.Process(runner.pid), *helpers]
    for proc in frozen:
        proc.suspend()
    for proc in frozen:
        proc.kill()
    runner.wait()
    return helpers


def test_sigterm_hands_a_running_job_back_without_spending_an_attempt(
    env: SpoolEnv, tmp_path: Path
) -> None:
    job_id = _lingering_job(env, tmp_path, spawn=False, max_attempts=1)
    env.write_config(grace_seconds=0.5)
    first = env.start_runner()
    attempt_pid = read_int(tmp_path / "1.pid")
    try:
        stopping = time.monotonic()
        first.signal(signal.SIGTERM)
        assert first.wait(15) == 0
        took = time.monotonic() - stopping
        assert is_gone(attempt_pid)
    finally:
        kill_quietly(attempt_pid)
    assert 0.5 <= took < 5, took  # waited out the grace period, then handed back
    back = env.record("pending", job_id)
    assert outcomes(back) == ["handed_back"]
    assert back["next_attempt_at"] is None
    assert back["error"] is None
    assert Job.model_validate(back).attempts_used == 0
    assert env.files("running") == []
    assert f"handed_back job={job_id} " in log_text(env)

    second = env.start_runner()
    done = env.wait_status(job_id, "completed", timeout=20)
    stop_clean(second)
    # max_attempts is 1: the hand-back did not use it up.
    assert outcomes(done) == ["handed_back", "succeeded"]
    assert Job.model_validate(done).attempts_used == 1
    assert done["attempts"][0]["runner"] != done["attempts"][1]["runner"]


def test_dead_runner_is_recovered_by_another(env: SpoolEnv, tmp_path: Path) -> None:
    job_id = _lingering_job(env, tmp_path, spawn=True)
    first = env.start_runner()
    attempt_pid = read_int(tmp_path / "1.pid")
    grandchild = read_int(tmp_path / "1.grandchild.pid")
    helpers: list[psutil.Process] = []
    try:
        helpers = _cut_off_runner(env, first, attempt_pid)
        assert not is_gone(attempt_pid)
        assert not is_gone(grandchild)
        second = env.start_runner("--lease-seconds", "1")
        done = env.wait_status(job_id, "completed", timeout=20)
        wait_until(
            lambda: is_gone(attempt_pid) and is_gone(grandchild),
            5,
            "the orphaned attempt tree to be killed",
        )
        stop_clean(second)
    finally:
        kill_quietly(attempt_pid, grandchild, *(p.pid for p in helpers))
    assert outcomes(done) == ["lost", "succeeded"]
    lost = done["attempts"][0]
    assert lost["error"]["type"] == "RunnerLost"
    assert lost["runner"] != done["attempts"][1]["runner"]
    assert done["result"] == 2
    assert env.files("running") == []
    assert f"recovered job={job_id} " in log_text(env)


def test_a_paused_runner_is_fenced_and_cannot_finish_a_recovered_job(
    env: SpoolEnv, tmp_path: Path
) -> None:
    job_id = _lingering_job(env, tmp_path, spawn=False)
    paused = env.start_runner("--lease-seconds", "1")
    attempt_pid = read_int(tmp_path / "1.pid")
    try:
        wait_until(
            lambda: any(j.get("pid") == attempt_pid for j in heartbeat_jobs(env)),
            10,
            "the heartbeat to list the attempt",
        )
        paused.signal(signal.SIGSTOP)  # a frozen VM: alive, lock held, heartbeat silent
        try:
            rescuer = env.start_runner("--lease-seconds", "1")
            done = env.wait_status(job_id, "completed", timeout=20)
        finally:
            paused.signal(signal.SIGCONT)
        # The paused runner wakes up, notices its lease lapsed and publishes nothing.
        wait_until(lambda: "lease_lost" in log_text(env), 10, "the paused runner to fence itself")
        stop_clean(paused)
        stop_clean(rescuer)
    finally:
        kill_quietly(attempt_pid)
    assert outcomes(done) == ["lost", "succeeded"]
    assert done["result"] == 2
    assert is_gone(attempt_pid)
    assert env.record("completed", job_id) == done
    assert f"fenced job={job_id} " in log_text(env)
    assert env.files("completed") == [f"{job_id}.json"]
    for status in ("pending", "running", "failed", "cancelled"):
        assert env.files(status) == [], status
    assert list((env.spool / "corrupt").iterdir()) == []


def test_recovery_kills_what_an_ended_attempt_left_behind(env: SpoolEnv, tmp_path: Path) -> None:
    """The runner and its fork server die; the attempt then ends by itself, but the
    grandchild it started lives on. Recovery must still kill that leftover."""
    allow_extra_jobs(env)
    job_id = run_background_job(
        "Lingerer", "linger", [str(tmp_path), 1.0, 0, True], config=config(env)
    )
    first = env.start_runner()
    attempt_pid = read_int(tmp_path / "1.pid")
    grandchild = read_int(tmp_path / "1.grandchild.pid")
    helpers: list[psutil.Process] = []
    try:
        helpers = _cut_off_runner(env, first, attempt_pid)
        wait_until(lambda: is_gone(attempt_pid), 10, "the attempt to end by itself")
        assert not is_gone(grandchild)
        second = env.start_runner("--lease-seconds", "1")
        env.wait_status(job_id, "completed", timeout=20)
        wait_until(lambda: is_gone(grandchild), 5, "the leftover grandchild to be killed")
        stop_clean(second)
    finally:
        kill_quietly(attempt_pid, grandchild, *(p.pid for p in helpers))


def _fork_server(runner: RunnerProcess) -> psutil.Process:
    [server] = [
        p for p in psutil.Process(runner.pid).children() if "jobspool.zygote" in p.cmdline()
    ]
    return server


def test_a_dead_fork_server_is_replaced_and_jobs_keep_running(env: SpoolEnv) -> None:
    """The fork server dies on its own (OOM killer, a crash): the runner starts
    a new one, whether it notices at end of file or at its next request."""
    runner = env.start_runner()
    first = env.runjob("Typed", "add", "1", "2", "--config", str(env.config)).stdout.strip()
    assert env.wait_status(first, "completed")["result"] == 3
    dead = _fork_server(runner)
    dead.kill()
    dead.wait(10)

    later = [
        env.runjob("Typed", "add", str(n), "1", "--config", str(env.config)).stdout.strip()
        for n in range(3)
    ]
    assert [env.wait_status(j, "completed")["result"] for j in later] == [1, 2, 3]
    assert _fork_server(runner).pid != dead.pid
    assert "launcher_died" in log_text(env, "background_jobs_errors.log")
    stop_clean(runner)
