"""Runners that die, freeze, lie about the time, crash-loop, stop, or miss events.

Every scenario uses real runner processes and real signals on a private
spool. Recovery times are measured from the signal to the moment the dead
runner's claims leave running/, and compared with the settings in force:
the lease (3 s), the heartbeat interval (0.2 s) and the rescan period.
Runners that play different hosts (JOBSPOOL_HOST) judge each other by the
heartbeat lease only; runners of one host also see each other's locks.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest

from jobspool.model import Job
from jobspool.names import RunningName
from jobspool.spool import Spool
from jobspool.submit import run_background_job
from tests.conftest import RunnerProcess, SpoolEnv, wait_until
from tests.support.hosts import (
    allow_liveness_jobs,
    claims,
    claims_of,
    ids_of,
    listed_pids,
    measure_until,
    registrations,
    start_as,
    wait_registered,
)
from tests.support.spoolkit import (
    config,
    is_gone,
    job_files_everywhere,
    kill_quietly,
    ledger_lines,
    log_text,
    outcomes,
    read_int,
    stop_clean,
)

# Slack on top of a computed bound: a loaded 2-core machine delays a loop
# step now and then, but never by a whole lease.
MARGIN = 1.0


def _lease(env: SpoolEnv) -> float:
    return float(env.settings["lease_seconds"])


def _beat(env: SpoolEnv) -> float:
    return float(env.settings["heartbeat_seconds"])


def _only_in(env: SpoolEnv, status: str, job_ids: list[str]) -> None:
    """Each job has exactly one file, in ``status``; no other job file exists anywhere."""
    everywhere = job_files_everywhere(env)
    assert everywhere[status] == sorted(f"{j}.json" for j in job_ids), everywhere
    for other, names in everywhere.items():
        if other != status:
            assert names == [], (other, names)
    corrupt = env.spool / "corrupt"
    assert not corrupt.exists() or sorted(p.name for p in corrupt.iterdir()) == []


def _absent(path: Path) -> bool:
    return not path.exists()


def _lingering_job(env: SpoolEnv, folder: Path, **extra: Any) -> str:
    """A job whose first attempt lingers for a minute (it must be cut short) and
    whose later attempts take 0.3 s; each attempt leaves its pid and a grandchild's."""
    folder.mkdir(exist_ok=True)
    return run_background_job(
        "Lingerer", "linger", [str(folder), 60, 0.3, True], config=config(env), **extra
    )


# ---------------------------------------------------------------- (a) SIGKILL


@pytest.mark.parametrize(
    "rescuer_host", ["host-a", "host-b"], ids=["same-host-lock", "other-host-lease"]
)
def test_sigkilled_runner_jobs_are_recovered_within_the_lease(
    env: SpoolEnv, tmp_path: Path, rescuer_host: str
) -> None:
    allow_liveness_jobs(env)
    lease, beat = _lease(env), _beat(env)
    folders = [tmp_path / "job0", tmp_path / "job1"]
    job_ids = [_lingering_job(env, folder) for folder in folders]
    first = start_as(env, "host-a")
    pids = [read_int(f / "1.pid") for f in folders]
    grandchildren = [read_int(f / "1.grandchild.pid") for f in folders]
    try:
        first_id = wait_registered(env.spool, first.pid)
        wait_until(
            lambda: listed_pids(env.spool, first_id) == set(pids),
            10,
            "the heartbeat to list both attempts",
        )
        second = start_as(env, rescuer_host)
        second_id = wait_registered(env.spool, second.pid)
        assert {c.job_id for c in claims_of(env.spool, first_id)} == set(job_ids)

        first.kill()  # SIGKILL
        took = measure_until(
            lambda: not claims_of(env.spool, first_id), lease + 15, "the claims to be recovered"
        )
        # The fork server notices its runner's death and takes the attempts' trees along.
        wait_until(
            lambda: all(is_gone(p) for p in pids + grandchildren),
            3,
            "the dead runner's attempts and their grandchildren to die",
        )
        records = [env.wait_status(j, "completed", timeout=20) for j in job_ids]
    finally:
        kill_quietly(*pids, *grandchildren)
    stop_clean(second)

    if rescuer_host == "host-a":
        # Same host: the dead runner's lock is free, so the next check (every
        # heartbeat interval) recovers without waiting for the lease.
        assert took <= beat + MARGIN, f"same-host recovery took {took:.2f}s"
    else:
        # Another host cannot see the lock: only the heartbeat lease counts.
        assert lease - 2 * beat <= took <= lease + beat + MARGIN, f"recovery took {took:.2f}s"
    for job_id, rec in zip(job_ids, records, strict=True):
        assert outcomes(rec) == ["lost", "succeeded"], job_id
        lost, won = rec["attempts"]
        assert (lost["number"], won["number"]) == (1, 2)
        assert lost["runner"] == first_id
        assert lost["error"]["type"] == "RunnerLost"
        assert won["runner"] == second_id
        assert rec["result"] == 2
        assert Job.model_validate(rec).attempts_used == 2
    _only_in(env, "completed", job_ids)
    # The dead runner's registration is cleared once its jobs are taken over.
    assert first_id not in registrations(env.spool)
    assert not (env.spool / "runners" / f"{first_id}.lock").exists()
    log = log_text(env)
    for job_id in job_ids:
        assert f"recovered job={job_id} dead_runner={first_id} attempt=1" in log
    # The record names where and as which process the lost attempt ran (the
    # dead runner's heartbeat said so), not where it was recovered.
    for pid, rec in zip(pids, records, strict=True):
        assert (rec["attempts"][0]["host"], rec["attempts"][0]["pid"]) == ("host-a", pid), rec[
            "attempts"
        ][0]


# ---------------------------------------------------------------- (b) SIGSTOP


@pytest.mark.parametrize(
    "rescuer_host", ["host-b", "host-a"], ids=["other-host", "same-host-lock-held"]
)
def test_paused_runner_is_recovered_then_fenced_and_keeps_working(
    env: SpoolEnv, tmp_path: Path, rescuer_host: str
) -> None:
    """A frozen runner (SIGSTOP) keeps its lock: only the lease reveals it.

    On the same host the rescuer also kills the frozen runner's attempt
    (its pid is visible there); on another host the attempt runs on until
    its own runner resumes, notices its lease lapsed and kills it.
    """
    allow_liveness_jobs(env)
    lease, beat = _lease(env), _beat(env)
    folder = tmp_path / "job"
    job_id = _lingering_job(env, folder)
    paused = start_as(env, "host-a")
    attempt_pid, grandchild = read_int(folder / "1.pid"), read_int(folder / "1.grandchild.pid")
    resumed = False
    try:
        paused_id = wait_registered(env.spool, paused.pid)
        wait_until(
            lambda: listed_pids(env.spool, paused_id) == {attempt_pid},
            10,
            "the heartbeat to list the attempt",
        )
        rescuer = start_as(env, rescuer_host)
        rescuer_id = wait_registered(env.spool, rescuer.pid)

        paused.signal(signal.SIGSTOP)
        took = measure_until(
            lambda: not claims_of(env.spool, paused_id), lease + 15, "the claim to be recovered"
        )
        done = env.wait_status(job_id, "completed", timeout=20)
        if rescuer_host == "host-a":
            wait_until(
                lambda: is_gone(attempt_pid) and is_gone(grandchild),
                3,
                "the rescuer to kill the frozen runner's attempt tree",
            )
        else:
            assert not is_gone(attempt_pid), "nothing on another host may kill the attempt"

        paused.signal(signal.SIGCONT)
        resumed = True
        wait_until(
            lambda: f"lease_lost runner={paused_id}" in log_text(env),
            10,
            "the resumed runner to notice its lease lapsed",
        )
        wait_until(
            lambda: is_gone(attempt_pid) and is_gone(grandchild),
            5,
            "the resumed runner to kill its attempt tree",
        )
        new_id = wait_until(
            lambda: next(iter(ids_of(env.spool, paused.pid) - {paused_id}), None),
            10,
            "the resumed runner to register under a new id",
        )
        wait_until(
            lambda: f"fenced job={job_id}" in log_text(env),
            10,
            "the resumed runner to drop its result for the job",
        )
    finally:
        if not resumed:
            paused.signal(signal.SIGCONT)
        kill_quietly(attempt_pid, grandchild)

    assert lease - 2 * beat <= took <= lease + beat + MARGIN, f"recovery took {took:.2f}s"
    assert outcomes(done) == ["lost", "succeeded"]
    assert done["attempts"][0]["runner"] == paused_id
    assert done["attempts"][1]["runner"] == rescuer_id
    assert env.record("completed", job_id) == done  # nothing was published over it
    _only_in(env, "completed", [job_id])
    log = log_text(env)
    assert f"runner_reregistered old={paused_id} runner={new_id}" in log
    assert paused_id not in registrations(env.spool)

    # It keeps working under its new id once it is the only runner left.
    stop_clean(rescuer)
    marker = tmp_path / "marker"
    after = run_background_job("Marker", "touch", [str(marker)], config=config(env))
    rec = env.wait_status(after, "completed", timeout=20)
    assert marker.read_text() == "ran"
    assert rec["attempts"][0]["runner"] == new_id
    stop_clean(paused)
    _only_in(env, "completed", sorted([job_id, after]))


# ---------------------------------------------------------------- (c) clock skew


class StandIn:
    """A heartbeat writer playing a runner on a host whose clock is off by ``skew``."""

    def __init__(self, env: SpoolEnv, runner_id: str, host: str, skew: float) -> None:
        cmd = [
            sys.executable,
            "-m",
            "tests.support.standin",
            str(env.spool),
            runner_id,
            host,
            str(skew),
        ]
        self.proc = subprocess.Popen(cmd, env=env.environ(), cwd=env.root)

    def hang(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)


@pytest.mark.parametrize("skew", [3600.0, -3600.0], ids=["hour-ahead", "hour-behind"])
def test_clock_skew_neither_kills_a_live_runner_nor_revives_a_dead_one(
    env: SpoolEnv, tmp_path: Path, skew: float
) -> None:
    lease, beat = _lease(env), _beat(env)
    marker = tmp_path / "marker"
    job_id = run_background_job("Marker", "touch", [str(marker)], config=config(env))
    remote_id = "host-z-4242-abcdef"
    # The remote runner's claim, made through the spool's own claim rename.
    spool = Spool(env.spool)
    assert spool.claim(f"{job_id}.json", RunningName(job_id, remote_id, 1)) is not None
    standin = StandIn(env, remote_id, "host-z", skew)
    try:
        wait_until(
            lambda: remote_id in registrations(env.spool), 10, "the remote heartbeat to appear"
        )
        observer = start_as(env, "host-y")
        wait_registered(env.spool, observer.pid)
        # Beating with a wall clock an hour off: alive for as long as it beats.
        watched = time.monotonic()
        while time.monotonic() - watched < 2 * lease:
            assert [c.runner for c in claims(env.spool)] == [remote_id], "live runner reaped"
            time.sleep(0.05)
        assert not marker.exists()
        # Hung: its file is still rewritten with a fresh-looking wall time, but
        # the beat counter stands still, so the lease runs out all the same.
        standin.hang()
        took = measure_until(
            lambda: not claims_of(env.spool, remote_id), lease + 15, "the hung runner's claim"
        )
        rec = env.wait_status(job_id, "completed", timeout=20)
    finally:
        standin.stop()
    stop_clean(observer)
    assert lease - 2 * beat <= took <= lease + beat + MARGIN, f"took {took:.2f}s"
    assert outcomes(rec) == ["lost", "succeeded"]
    assert rec["attempts"][0]["runner"] == remote_id
    assert marker.read_text() == "ran"
    _only_in(env, "completed", [job_id])


# ---------------------------------------------------------------- (d) crash loop


def test_poison_job_that_kills_its_runner_stops_after_max_attempts(
    env: SpoolEnv, tmp_path: Path
) -> None:
    allow_liveness_jobs(env)  # RunnerKiller: max_attempts 3, no delay
    ledger = tmp_path / "ledger"
    job_id = run_background_job("RunnerKiller", "strike", [str(ledger)], config=config(env))
    # A tiny supervisor: restart the runner whenever it dies, until the job is failed.
    deaths: list[int] = []
    starts = 0

    def settled(runner: RunnerProcess) -> bool:
        return runner.proc.poll() is not None or env.status_of(job_id) == "failed"

    while env.status_of(job_id) != "failed":
        assert starts < 8, f"still {env.status_of(job_id)} after {starts} runner starts"
        runner = env.start_runner()
        starts += 1
        wait_until(partial(settled, runner), 30, "the runner to die or the job to fail")
        if runner.proc.poll() is not None:
            deaths.append(runner.wait())
        else:
            stop_clean(runner)
    rec = env.record("failed", job_id)
    runs = ledger_lines(ledger)
    assert runs == [(job_id, 1), (job_id, 2), (job_id, 3)]
    assert deaths == [-signal.SIGKILL] * 3
    assert starts == 4
    assert outcomes(rec) == ["lost", "lost", "lost"]
    assert all(a["error"]["type"] == "RunnerLost" for a in rec["attempts"])
    assert "lost on attempt 3 of 3" in (rec["reason"] or "")
    _only_in(env, "failed", [job_id])


# ---------------------------------------------------------------- (e) SIGTERM


def test_sigterm_finishes_short_jobs_and_hands_back_long_ones_at_grace(
    env: SpoolEnv, tmp_path: Path
) -> None:
    allow_liveness_jobs(env)
    grace = 1.5
    env.write_config(grace_seconds=grace)
    cfg = config(env)
    folder = tmp_path / "long"
    long_id = _lingering_job(env, folder, max_attempts=1)
    short_started = tmp_path / "short.pid"
    short_id = run_background_job(
        "Sleeper", "sleep", [0.5, "", str(short_started)], max_attempts=1, config=cfg
    )
    runner = start_as(env, "host-a")
    attempt_pid, grandchild = read_int(folder / "1.pid"), read_int(folder / "1.grandchild.pid")
    try:
        read_int(short_started)
        runner.signal(signal.SIGTERM)
        stopping = time.monotonic()
        # It stops claiming at once: a job dropped now stays pending.
        late = run_background_job("Marker", "touch", [str(tmp_path / "late")], config=cfg)
        assert runner.wait(grace + 15) == 0
        took = time.monotonic() - stopping
        assert is_gone(attempt_pid)
        wait_until(lambda: is_gone(grandchild), 3, "the handed-back attempt's grandchild to die")
    finally:
        kill_quietly(attempt_pid, grandchild)
    assert grace - 0.2 <= took <= grace + MARGIN + 1.0, f"shutdown took {took:.2f}s"
    assert "Traceback" not in runner.stderr()
    short = env.record("completed", short_id)
    assert outcomes(short) == ["succeeded"]
    back = env.record("pending", long_id)
    assert outcomes(back) == ["handed_back"]
    assert Job.model_validate(back).attempts_used == 0
    assert back["next_attempt_at"] is None
    assert env.status_of(late) == "pending"
    assert not (tmp_path / "late").exists()
    assert env.files("running") == []

    # With max_attempts 1 the handed-back job still has its one attempt.
    again = start_as(env, "host-a")
    rec = env.wait_status(long_id, "completed", timeout=20)
    env.wait_status(late, "completed", timeout=20)
    stop_clean(again)
    assert outcomes(rec) == ["handed_back", "succeeded"]
    assert rec["result"] == 2  # the claim after a hand-back is attempt 2, counted as the first
    assert Job.model_validate(rec).attempts_used == 1


# ---------------------------------------------------------------- (f) no events


def test_without_notifications_every_job_is_picked_up_within_the_rescan_period(
    env: SpoolEnv, tmp_path: Path
) -> None:
    poll = 1.0
    runner = env.start_runner("--no-watch", "--poll", str(poll))
    wait_registered(env.spool, runner.pid)
    latencies = []
    for i in range(6):
        name = f"nowatch-{i}.json"
        doc = f'{{"job": "Marker", "method": "touch", "params": ["{tmp_path / str(i)}"]}}'
        # Spread the drops over the rescan cycle.
        time.sleep(0.37 * (i % 3))
        env.drop(name, doc)
        dropped = env.spool / "pending" / name
        latencies.append(
            measure_until(partial(_absent, dropped), poll + 10, f"{name} to be claimed")
        )
    wait_until(lambda: len(env.files("completed")) == 6, 20, "all six jobs to complete")
    stop_clean(runner)
    assert max(latencies) <= poll + MARGIN, latencies
    # Some pickups had to wait for a rescan: notifications really were off.
    assert max(latencies) > 0.1, latencies
    for i in range(6):
        assert (tmp_path / str(i)).read_text() == "ran"


def test_runner_killed_while_its_fork_server_lags_leaves_no_job_processes(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """The fork server learns of one attempt's exit before it learns its runner died.

    On a loaded machine the fork server may not run for a while. Here it is
    held with SIGSTOP while one attempt exits and its runner is SIGKILLed;
    another attempt (with a grandchild) is still running. When the fork
    server runs again it has both news at once, and whatever it handles
    first, no job process may outlive it.
    """
    allow_liveness_jobs(env)
    short, long = tmp_path / "short", tmp_path / "long"
    for folder, seconds in ((short, 1.5), (long, 60.0)):
        folder.mkdir()
        run_background_job(
            "Lingerer", "linger", [str(folder), seconds, seconds, True], config=config(env)
        )
    runner = env.start_runner()
    pids = [read_int(f / name) for f in (short, long) for name in ("1.pid", "1.grandchild.pid")]
    short_pid, long_pid, long_grandchild = pids[0], pids[2], pids[3]
    fork_server = next(
        p for p in psutil.Process(runner.pid).children() if "jobspool.zygote" in p.cmdline()
    )
    try:
        fork_server.suspend()
        # The short attempt exits but cannot be reaped: its parent is stopped.
        wait_until(
            lambda: psutil.Process(short_pid).status() == psutil.STATUS_ZOMBIE,
            10,
            "the short attempt to exit unreaped",
        )
        runner.kill()
        fork_server.resume()
        wait_until(lambda: is_gone(fork_server.pid), 10, "the fork server to exit")
        wait_until(
            lambda: is_gone(long_pid) and is_gone(long_grandchild),
            3,
            "the running attempt and its grandchild to be killed with the fork server",
        )
    finally:
        kill_quietly(*pids, fork_server.pid)
