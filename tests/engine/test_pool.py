"""Pooled mode (isolation: pool): long-lived pool workers run many attempts
each and keep every promise of one process per attempt.

Real runners, real pool workers, real signals; each test fails when the
rule in its name is broken.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from jobspool.child import PIPE_ATOMIC, RunRequest
from jobspool.executor import ForkServer
from jobspool.messages import AttemptExited, AttemptStarted, Event
from jobspool.submit import run_background_job
from tests.conftest import REPO, SpoolEnv, wait_until
from tests.support.spoolkit import (
    config,
    heartbeat_jobs,
    is_gone,
    job_log,
    kill_quietly,
    outcomes,
    read_int,
    stop_clean,
)

METHODS = [
    "pid",
    "hang",
    "leave",
    "die",
    "grow",
    "ledger",
    "thread",
    "big",
    "progress",
    "flood",
    "pipes",
]
POOLED = {"class": "tests.support.pooljobs.Pooled", "allowed_methods": METHODS}


def _pooled(env: SpoolEnv, entry_isolation: str | None = "pool", **settings: Any) -> None:
    entry = {**POOLED, "isolation": entry_isolation} if entry_isolation else POOLED
    jobs = {**env.settings["allowed_jobs"], "Pooled": entry}
    env.write_config(allowed_jobs=jobs, **settings)


def _submit(env: SpoolEnv, method: str, *params: Any, **kw: Any) -> str:
    return run_background_job("Pooled", method, list(params), config=config(env), **kw)


def _pid_of(env: SpoolEnv, job_id: str, status: str = "completed") -> int:
    pid: int = env.record(status, job_id)["attempts"][-1]["pid"]
    return pid


def _burst(env: SpoolEnv) -> None:
    done = env.burst()
    assert done.returncode == 0, done.stderr


def _in_order(env: SpoolEnv, ids: list[str]) -> list[int]:
    """The pids of the jobs' attempts, in the order they started."""
    attempts = [env.record("completed", i)["attempts"][-1] for i in ids]
    return [a["pid"] for a in sorted(attempts, key=lambda a: a["started_at"])]


def test_a_pool_worker_runs_many_attempts_and_each_output_goes_to_its_own_log(
    env: SpoolEnv,
) -> None:
    _pooled(env)
    ids = [_submit(env, "pid", f"tag{i}") for i in range(30)]
    _burst(env)
    pids = [_pid_of(env, i) for i in ids]
    assert [env.record("completed", i)["result"] for i in ids] == pids
    assert max(Counter(pids).values()) > 1, f"no worker ran two attempts: {pids}"
    for i, job_id in enumerate(ids):
        lines = job_log(env, job_id).splitlines()
        assert sorted(lines) == [f"err of {job_id} tag{i}", f"out of {job_id} tag{i}"]


def test_process_isolation_keeps_one_process_per_attempt_beside_pooled_jobs(
    env: SpoolEnv,
) -> None:
    pooled = {**POOLED, "isolation": "pool"}
    own = {**POOLED, "isolation": "process"}
    jobs = {**env.settings["allowed_jobs"], "Pooled": pooled, "Own": own}
    env.write_config(allowed_jobs=jobs)
    cfg = config(env)
    pooled_ids = [run_background_job("Pooled", "pid", [], config=cfg) for _ in range(12)]
    own_ids = [run_background_job("Own", "pid", [], config=cfg) for _ in range(12)]
    _burst(env)
    own_pids = [_pid_of(env, i) for i in own_ids]
    pooled_pids = [_pid_of(env, i) for i in pooled_ids]
    assert len(set(own_pids)) == len(own_pids), own_pids
    assert not set(own_pids) & set(pooled_pids)
    assert max(Counter(pooled_pids).values()) > 1, pooled_pids


def test_the_spool_wide_setting_pools_every_job_without_limits(env: SpoolEnv) -> None:
    _pooled(env, None, isolation="pool")
    ids = [_submit(env, "pid") for _ in range(10)]
    _burst(env)
    pids = [_pid_of(env, i) for i in ids]
    assert max(Counter(pids).values()) > 1, pids


def test_a_timeout_kills_the_worker_and_its_children_and_the_next_job_gets_a_fresh_worker(
    env: SpoolEnv, tmp_path: Path
) -> None:
    _pooled(env, workers=1)
    first = _submit(env, "pid")
    hung = _submit(env, "hang", str(tmp_path / "w.pid"), str(tmp_path / "kid.pid"), timeout=1)
    runner = env.start_runner()
    worker, kid = read_int(tmp_path / "w.pid"), read_int(tmp_path / "kid.pid")
    try:
        wait_until(lambda: is_gone(worker) and is_gone(kid), 15, "the worker and its child to die")
        after = _submit(env, "pid")
        env.wait_status(after, "completed")
        timed = wait_until(lambda: _timed_out(env, hung), 15, "the timeout to be recorded")
        stop_clean(runner)
    finally:
        kill_quietly(worker, kid)
    assert _pid_of(env, first) == worker  # the hung job ran in the first job's worker
    assert timed is not None and timed["error"]["type"] == "Timeout"
    assert _pid_of(env, after) not in (worker, kid)


def _timed_out(env: SpoolEnv, job_id: str) -> dict[str, Any] | None:
    for status in ("pending", "failed"):
        try:
            attempts = env.record(status, job_id)["attempts"]
        except FileNotFoundError:
            continue
        if attempts and attempts[0]["outcome"] == "timed_out":
            first: dict[str, Any] = attempts[0]
            return first
    return None


def test_cancel_of_a_pooled_running_job_kills_its_worker_and_tree(
    env: SpoolEnv, tmp_path: Path
) -> None:
    _pooled(env)
    job_id = _submit(env, "hang", str(tmp_path / "w.pid"), str(tmp_path / "kid.pid"))
    runner = env.start_runner()
    worker, kid = read_int(tmp_path / "w.pid"), read_int(tmp_path / "kid.pid")
    try:
        env.wait_status(job_id, "running")
        out = env.cli("cancel", job_id, "--config", str(env.config))
        assert out.returncode == 0, out.stderr
        rec = env.wait_status(job_id, "cancelled", timeout=10)
        wait_until(lambda: is_gone(worker) and is_gone(kid), 5, "the worker tree to die")
        after = _submit(env, "pid")
        env.wait_status(after, "completed")
        stop_clean(runner)
    finally:
        kill_quietly(worker, kid)
    assert outcomes(rec) == ["cancelled"]
    assert _pid_of(env, after) != worker


def test_a_job_that_kills_its_worker_is_recorded_crashed_and_the_queue_goes_on(
    env: SpoolEnv,
) -> None:
    _pooled(env, workers=1, retry={"max_attempts": 1, "delay_seconds": 0})
    before = _submit(env, "pid")
    exits = _submit(env, "die", "exit")
    killed = _submit(env, "die", "kill")
    after = [_submit(env, "pid") for _ in range(3)]
    _burst(env)
    assert env.record("failed", exits)["attempts"][0]["outcome"] == "crashed"
    assert env.record("failed", exits)["attempts"][0]["exit_code"] == 3
    assert env.record("failed", killed)["attempts"][0]["signal"] == signal.SIGKILL
    assert all(env.status_of(i) == "completed" for i in [before, *after])


def test_a_worker_is_replaced_after_max_attempts_per_worker(env: SpoolEnv) -> None:
    _pooled(env, workers=1, pool={"max_attempts_per_worker": 3})
    ids = [_submit(env, "pid") for _ in range(9)]
    _burst(env)
    pids = _in_order(env, ids)
    assert [len(set(pids[i : i + 3])) for i in (0, 3, 6)] == [1, 1, 1], pids
    assert len(set(pids)) == 3, pids


def test_a_worker_above_max_worker_memory_is_replaced_after_its_attempt(env: SpoolEnv) -> None:
    _pooled(env, workers=1, pool={"max_worker_memory": "100MB"})
    small = [_submit(env, "pid") for _ in range(2)]
    _burst(env)
    big = _submit(env, "grow", 150)
    last = _submit(env, "pid")
    _burst(env)
    assert len({_pid_of(env, i) for i in small}) == 1  # below the bound: kept
    assert _pid_of(env, last) != _pid_of(env, big)


def test_a_worker_whose_attempt_left_a_thread_running_is_replaced(env: SpoolEnv) -> None:
    _pooled(env, workers=1)
    ids = [_submit(env, "pid"), _submit(env, "pid"), _submit(env, "thread"), _submit(env, "pid")]
    _burst(env)
    pids = _in_order(env, ids)
    assert pids[0] == pids[1] == pids[2] != pids[3], pids


def test_a_report_too_big_for_the_pipe_reaches_the_runner_from_a_kept_worker(
    env: SpoolEnv,
) -> None:
    """The attempt ends by the worker's D line, not by an exit: its report
    file is read then, and the worker runs the next attempt."""
    _pooled(env, workers=1)
    size = 3 * PIPE_ATOMIC
    ids = [_submit(env, "pid"), _submit(env, "big", size), _submit(env, "pid")]
    _burst(env)
    assert env.record("completed", ids[1])["result"] == "b" * size
    assert len(set(_in_order(env, ids))) == 1


def test_a_request_larger_than_a_socket_buffer_reaches_a_kept_worker_whole(
    env: SpoolEnv,
) -> None:
    _pooled(env, workers=1)
    tag = "t" * 600_000
    ids = [_submit(env, "pid"), _submit(env, "pid", tag), _submit(env, "pid")]
    _burst(env)
    assert f"out of {ids[1]} {tag}" in job_log(env, ids[1]).splitlines()
    assert len(set(_in_order(env, ids))) == 1


def test_a_pooled_attempt_past_its_output_cap_is_stopped_and_the_next_job_runs(
    env: SpoolEnv,
) -> None:
    retry = {"max_attempts": 1, "delay_seconds": 0}
    _pooled(env, workers=1, logs={"job_log_max_bytes": 4096}, retry=retry)
    ids = [_submit(env, "pid"), _submit(env, "flood", 1 << 20), _submit(env, "pid")]
    _burst(env)
    flooded = env.record("failed", ids[1])["attempts"][0]
    assert flooded["error"]["type"] == "LimitExceeded", flooded
    assert "output limit of 4096 bytes" in flooded["error"]["message"]
    assert os.path.getsize(env.spool / "logs" / "jobs" / f"{ids[1]}.log") <= 4096
    assert env.status_of(ids[2]) == "completed"
    assert _pid_of(env, ids[0]) == _pid_of(env, ids[1], "failed") != _pid_of(env, ids[2])


def test_a_program_a_pooled_job_runs_inherits_no_pipe_or_socket_of_its_worker(
    env: SpoolEnv,
) -> None:
    """Neither the attempt's report pipe nor the worker's socket: the
    program could otherwise speak on them after the attempt ended."""
    _pooled(env, workers=1)
    ids = [_submit(env, "pid"), _submit(env, "pipes")]
    _burst(env)
    inherited = env.record("completed", ids[1])["result"]
    assert [line for line in inherited if not line.startswith("1 ")] == [], inherited


def test_progress_and_the_job_context_are_each_attempts_own(env: SpoolEnv) -> None:
    _pooled(env, workers=1)
    ids = [_submit(env, "progress"), _submit(env, "pid")]
    _burst(env)
    first, second = (env.record("completed", i) for i in ids)
    assert first["progress"]["message"] == "half way"
    assert second["progress"] is None
    assert job_log(env, ids[1]).split() == ["out", "of", ids[1], "err", "of", ids[1]]
    assert len(set(_in_order(env, ids))) == 1


def test_an_edited_job_module_is_picked_up_by_new_workers(env: SpoolEnv) -> None:
    module = env.root / "edited_job.py"
    module.write_text("class Edited:\n    def version(self) -> str:\n        return 'one'\n")
    entry = {"class": "edited_job.Edited", "allowed_methods": ["version"], "isolation": "pool"}
    env.write_config(allowed_jobs={**env.settings["allowed_jobs"], "Edited": entry})
    runner = env.start_runner()
    cfg = config(env)
    first = run_background_job("Edited", "version", [], config=cfg)
    assert env.wait_status(first, "completed")["result"] == "one"
    module.write_text("class Edited:\n    def version(self) -> str:\n        return 'two'\n")
    later = os.stat(module).st_mtime + 2
    os.utime(module, (later, later))
    second = run_background_job("Edited", "version", [], config=cfg)
    assert env.wait_status(second, "completed")["result"] == "two"
    stop_clean(runner)


def test_a_child_a_pooled_attempt_leaves_behind_dies_when_that_attempt_ends(
    env: SpoolEnv, tmp_path: Path
) -> None:
    _pooled(env, workers=1)
    kid, runaway = tmp_path / "kid.pid", tmp_path / "runaway.pid"
    leaves = _submit(env, "leave", str(kid))
    detaches = _submit(env, "leave", str(runaway), True)
    runner = env.start_runner()
    pids = [read_int(kid), read_int(runaway)]
    try:
        env.wait_status(leaves, "completed")
        env.wait_status(detaches, "completed")
        wait_until(lambda: all(is_gone(p) for p in pids), 5, "what the attempts left to die")
        after = _submit(env, "pid")
        env.wait_status(after, "completed")
        stop_clean(runner)
    finally:
        kill_quietly(*pids)
    worker = _pid_of(env, leaves)
    assert _pid_of(env, detaches) == worker == _pid_of(env, after)  # the worker was kept


def test_a_runner_killed_with_pooled_attempts_in_flight_loses_and_duplicates_nothing(
    env: SpoolEnv, tmp_path: Path
) -> None:
    _pooled(env)
    ledger = tmp_path / "ledger"
    ids = [_submit(env, "ledger", str(ledger), 0.05) for _ in range(60)]
    first = env.start_runner()
    wait_until(lambda: len(env.files("completed")) >= 10, 30, "some jobs to complete")
    workers = wait_until(lambda: {j["pid"] for j in heartbeat_jobs(env) if j.get("pid")}, 10)
    first.signal(signal.SIGKILL)
    first.wait()
    try:
        wait_until(lambda: all(is_gone(p) for p in workers), 10, "the dead runner's workers to die")
        second = env.start_runner("--lease-seconds", "1")
        wait_until(lambda: len(env.files("completed")) == len(ids), 60, "every job to complete")
        stop_clean(second)
    finally:
        kill_quietly(*workers)
    assert sorted(env.files("completed")) == sorted(f"{i}.json" for i in ids)
    for status in ("pending", "running", "failed", "cancelled"):
        assert env.files(status) == []
    ran = Counter(line.split()[0] for line in ledger.read_text().splitlines())
    assert set(ran) == set(ids)
    recovered = [i for i in ids if "lost" in outcomes(env.record("completed", i))]
    assert recovered, "no pooled attempt was in flight when the runner died"
    for job_id in ids:  # a job ran again only after an attempt of it was lost
        lost = outcomes(env.record("completed", job_id)).count("lost")
        assert ran[job_id] <= 1 + lost, (job_id, ran[job_id], lost)


def test_pool_with_limits_on_the_same_entry_is_refused_in_one_line(env: SpoolEnv) -> None:
    entry = {**POOLED, "isolation": "pool", "limits": {"memory_mb": 256}}
    env.write_config(allowed_jobs={**env.settings["allowed_jobs"], "Pooled": entry})
    out = env.cli("check", "--config", str(env.config))
    assert out.returncode != 0
    assert "allowed_jobs.Pooled.isolation: pool cannot hold limits (memory_mb)" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_pooled_job_under_spool_wide_pool_with_its_own_limits_runs_per_attempt(
    env: SpoolEnv,
) -> None:
    entry = {**POOLED, "limits": {"open_files": 256}}
    env.write_config(
        isolation="pool", allowed_jobs={**env.settings["allowed_jobs"], "Pooled": entry}
    )
    ids = [_submit(env, "pid") for _ in range(6)]
    _burst(env)
    pids = [_pid_of(env, i) for i in ids]
    assert len(set(pids)) == len(pids), pids


def test_with_start_method_spawn_pooled_jobs_run_one_interpreter_per_attempt(
    env: SpoolEnv,
) -> None:
    _pooled(env, start_method="spawn")
    ids = [_submit(env, "pid") for _ in range(4)]
    _burst(env)
    pids = [_pid_of(env, i) for i in ids]
    assert len(set(pids)) == len(pids), pids


# ---------------------------------------------------------------- the fork server alone


class _Server:
    """A real fork server driven as the runner drives it, its messages kept."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.server = ForkServer(self.events.append)
        self.server.wait_ready()

    def start(self, tmp: Path, token: str, method: str, *params: Any) -> None:
        self.server.start(
            RunRequest(
                token=token,
                job_id=token,
                job="Pooled",
                method=method,
                params=list(params),
                class_path="tests.support.pooljobs.Pooled",
                attempt=1,
                max_attempts=1,
                base_dir=str(REPO),
                log_path=str(tmp / f"{token}.log"),
                report_path=str(tmp / f"{token}.report"),
                pool=(1000, 1 << 30, 0),
            )
        )

    def ended(self, token: str) -> AttemptExited:
        """The attempt's end (an X or a D line), waited for."""

        def found() -> AttemptExited | None:
            self.server.pump()
            ends = [e for e in self.events if isinstance(e, AttemptExited) and e.token == token]
            return ends[0] if ends else None

        end = wait_until(found, 20, f"attempt {token} to end")
        assert end is not None
        return end

    def pid_of(self, token: str) -> int:
        return next(
            e.pid for e in self.events if isinstance(e, AttemptStarted) and e.token == token
        )


def test_a_stop_for_an_attempt_that_ended_never_touches_the_next_attempt_of_its_worker(
    tmp_path: Path,
) -> None:
    """A timeout or cancel can land after its pooled attempt ended and its
    worker took the next one: the fork server kills a worker only while it
    still runs the attempt named."""
    server = _Server()
    try:
        server.start(tmp_path, "first", "pid")
        assert server.ended("first").code == 0
        server.start(tmp_path, "second", "ledger", str(tmp_path / "ledger"), 0.5)
        wait_until((tmp_path / "ledger").exists, 20, "the second attempt to run")
        server.server.stop("first")  # too late: "first" is over
        second = server.ended("second")
        assert server.pid_of("second") == server.pid_of("first")  # the same worker
        assert second.code == 0
    finally:
        server.server.close()
