"""A heartbeat names pids; a runner kills only what it proves is an attempt of this host.

F2: a well-formed forged heartbeat ``runners/<id>.json`` of this host, with
no lock beside it, named a pid with its true start time; the runner judged
that "runner" dead and SIGKILLed the pid, its group and its children. Now
each process is proven from /proc first (same user, the runner's marker in
its environment, its start time, its session): anything else lives on.
Real runners, real victims, real signals.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from jobspool.heartbeats import BeatJob, Heartbeat, encode
from jobspool.names import hostname
from tests.conftest import SpoolEnv, wait_until
from tests.support.hosts import wait_registered
from tests.support.spoolkit import is_gone, kill_quietly, log_text, stop_clean

RUNNER_MARK = "JOBSPOOL_RUNNER_PID"  # jobspool.child.RUNNER_MARK (checked below)
FORGED_RUNNER_PID = 4_000_000  # above any pid Linux hands out: no runner has it
# A program any user may run (another user cannot reach this interpreter).
SLEEP = [shutil.which("sleep") or "/bin/sleep", "120"]


def _forge(env: SpoolEnv, runner: str, victims: list[int], runner_pid: int) -> Path:
    """Write runners/<runner>.json the way a runner does, naming ``victims``."""
    now = datetime.now(UTC)
    jobs = tuple(
        BeatJob(
            id=f"job-{n}",
            attempt=1,
            pid=pid,
            pid_created=psutil.Process(pid).create_time(),
            started_at=now,
            name="Typed.add",
        )
        for n, pid in enumerate(victims)
    )
    beat = Heartbeat(
        runner=runner,
        host=hostname(),
        pid=runner_pid,
        pid_created=None,
        started_at=now,
        beat=1,
        wall=now,
        jobs=jobs,
    )
    folder = env.spool / "runners"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{runner}.tmp"
    tmp.write_bytes(encode(beat))
    path = folder / f"{runner}.json"
    os.replace(tmp, path)
    return path


def _judged(env: SpoolEnv, runner: str, path: Path) -> None:
    """Wait until the live runner took ``runner`` for dead and acted on it
    (it kills first, then forgets the heartbeat)."""
    wait_until(lambda: not path.exists(), 20, f"the runner to judge {runner} dead")


def _victims(kinds: list[str]) -> list[subprocess.Popen[bytes]]:
    procs = []
    for kind in kinds:
        if kind == "plain":
            procs.append(subprocess.Popen(SLEEP))
        elif kind == "session-leader":
            # Leads its own session, as an attempt does; no marker.
            procs.append(subprocess.Popen(SLEEP, start_new_session=True))
        elif kind == "marked-other-user":
            procs.append(_other_users_attempt_lookalike())
    return procs


def _other_users_attempt_lookalike() -> subprocess.Popen[bytes]:
    """A session leader carrying the forged runner's marker, run by another
    user (nobody) when we are root, so only the uid tells it apart."""
    env = {"PATH": os.environ.get("PATH", ""), RUNNER_MARK: str(FORGED_RUNNER_PID)}
    if os.getuid() == 0:
        return subprocess.Popen(SLEEP, env=env, cwd="/", user=65534, start_new_session=True)
    # Not root: another user's process is out of reach anyway; ours with the
    # marker would be proven, so none is started (see the root case above).
    return subprocess.Popen(SLEEP, start_new_session=True)


@pytest.mark.parametrize(
    "kinds",
    [["plain"], ["session-leader"], ["marked-other-user"], ["plain", "session-leader"]],
    ids=["plain", "session-leader", "marked-other-user", "two"],
)
def test_a_forged_heartbeat_kills_nothing_it_names(env: SpoolEnv, kinds: list[str]) -> None:
    """F2: the victims live on after the runner took the forged runner for dead."""
    runner = env.start_runner()
    wait_registered(env.spool, runner.pid)
    victims = _victims(kinds)
    try:
        forged = f"{hostname()}-{FORGED_RUNNER_PID}-f0f0f0"
        path = _forge(env, forged, [v.pid for v in victims], FORGED_RUNNER_PID)
        _judged(env, forged, path)
        for victim in victims:
            assert victim.poll() is None, f"victim {victim.pid} was killed"
            assert not is_gone(victim.pid)
    finally:
        for victim in victims:
            kill_quietly(victim.pid)
            victim.wait()
    stop_clean(runner)
    assert "Traceback" not in log_text(env, "background_jobs_errors.log")


def test_a_forged_heartbeat_naming_the_runners_own_pid_kills_nothing(env: SpoolEnv) -> None:
    """A heartbeat that claims to be of the live runner's process (its pid,
    so its marker) still names a process that is not an attempt: the test
    process itself, a session leader of our user, is left alone."""
    runner = env.start_runner()
    wait_registered(env.spool, runner.pid)
    victim = subprocess.Popen(SLEEP, start_new_session=True)
    try:
        forged = f"{hostname()}-{runner.pid}-f1f1f1"
        path = _forge(env, forged, [victim.pid, runner.pid], runner.pid)
        _judged(env, forged, path)
        assert victim.poll() is None
        assert runner.proc.poll() is None
    finally:
        kill_quietly(victim.pid)
        victim.wait()
    stop_clean(runner)


# ---------------------------------------------------------------- the proof itself


def _attempt_like(marker_pid: int, token: str) -> subprocess.Popen[bytes]:
    """A process that looks like an attempt of runner ``marker_pid`` from /proc."""
    env = {**os.environ, RUNNER_MARK: str(marker_pid), "JOBSPOOL_ATTEMPT": token}
    return subprocess.Popen(SLEEP, env=env, start_new_session=True)


def test_the_proof_needs_the_marker_the_session_and_the_start_time() -> None:
    from jobspool import child, provenance

    assert child.RUNNER_MARK == RUNNER_MARK
    proc = _attempt_like(os.getpid(), "job~runner~1")
    try:
        created = wait_until(lambda: psutil.Process(proc.pid).create_time(), 5, "a start time")
        mark = f"{RUNNER_MARK}={os.getpid()}".encode()

        def marked() -> bool:
            # Until exec, /proc shows the environment of the forked test process.
            info = provenance.read(proc.pid, provenance.boot_time())
            return info is not None and mark in info.environ

        wait_until(marked, 10, "the process to run with its environment")

        def found(**changes: object) -> list[int]:
            base = {
                "pid": proc.pid,
                "created": created,
                "since": created,
                "token": "job~runner~1",
                "runner_pid": os.getpid(),
            }
            attempt = provenance.Attempt(**{**base, **changes})  # type: ignore[arg-type]
            return [p.pid for p in provenance.proven(attempt)]

        assert found() == [proc.pid]
        assert found(runner_pid=os.getpid() + 1) == []  # another runner's mark
        assert found(created=created - 30) == []  # not the process that was started then
        # Named as what an attempt left behind (by its token), not as the attempt.
        assert found(pid=FORGED_RUNNER_PID, since=created) == [proc.pid]
        assert found(pid=FORGED_RUNNER_PID, token="other~runner~1") == []
        assert found(pid=FORGED_RUNNER_PID, since=time.time() + 30) == []
    finally:
        proc.kill()
        proc.wait()
