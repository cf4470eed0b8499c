"""Files in runners/ that must neither crash a runner nor fool another (finding F4).

A runner's own registration (its heartbeat file and its lock) is rewritten
or checked at every beat, and what it finds at those names is not trusted:
a directory in place of its heartbeat is moved to corrupt/ and the beat
goes on; nothing planted at a guessable temporary name is followed or
waited on; its release never raises. A lock file replaced under a live
runner is taken back by its owner at the next beat, and in the meantime a
runner of the same host does not take the free lock as proof of death
while the owner's process lives or its heartbeat still changes.

(F4 a, a heartbeat whose ``started_at`` has no time zone, is covered in
``test_heartbeats.py``: ``test_a_naive_time_in_a_heartbeat_...[started_at]``.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from jobspool.heartbeats import Heartbeat, encode
from jobspool.leases import Liveness, lock_is_free
from jobspool.model import Job
from jobspool.names import hostname
from jobspool.spool import Spool
from tests.conftest import RunnerProcess, SpoolEnv, wait_until
from tests.support.hosts import claims_of, registrations, wait_registered
from tests.support.spoolkit import is_gone, kill_quietly, log_text, outcomes, stop_clean

GATE = {"class": "tests.support.testjobs.Gate", "allowed_methods": ["wait"]}


def _beats(env: SpoolEnv, runner: RunnerProcess) -> int:
    for beat in registrations(env.spool).values():
        if beat.get("pid") == runner.pid:
            return int(beat.get("beat", 0))
    return 0


def _let_it_beat(env: SpoolEnv, runner: RunnerProcess, beats: int) -> None:
    """Wait until runner has written ``beats`` more heartbeats (0.2 s apart)."""
    start = _beats(env, runner)
    wait_until(
        lambda: _beats(env, runner) >= start + beats, 30, f"{beats} more heartbeats of {runner.pid}"
    )


def _gated(env: SpoolEnv, tmp_path: Path) -> tuple[RunnerProcess, str, str, int]:
    """A runner running a Gate job (it ends once tmp_path/release exists):
    the runner, its id, the job's id and the attempt's pid."""
    env.write_config(allowed_jobs={**env.settings["allowed_jobs"], "Gate": GATE})
    job_id = Spool(env.spool, durable=False).submit(
        Job(
            job="Gate", method="wait", params=[str(tmp_path / "started"), str(tmp_path / "release")]
        )
    )
    runner = env.start_runner()
    runner_id = wait_registered(env.spool, runner.pid)
    env.wait_status(job_id, "running")
    wait_until((tmp_path / "started").exists, 20, "the gated job to start")
    return runner, runner_id, job_id, int((tmp_path / "started").read_text())


def _frozen(runner: RunnerProcess) -> None:
    runner.signal(signal.SIGSTOP)
    wait_until(
        lambda: psutil.Process(runner.pid).status() == psutil.STATUS_STOPPED,
        10,
        "the runner to stop",
    )


# ---------------------------------------------------------------- (b) the heartbeat's names


def test_a_directory_in_place_of_a_live_heartbeat_is_moved_aside_and_the_attempt_lives(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """F4 b: the heartbeat write failed at every beat (EISDIR), the runner took
    its own lease for lapsed, killed its attempt as lost, and then died in
    ``Lease.release()`` on the same directory."""
    runner, runner_id, job_id, pid = _gated(env, tmp_path)
    beat = env.spool / "runners" / f"{runner_id}.json"
    try:
        _frozen(runner)  # so the directory is in place before its next beat
        beat.unlink()
        beat.mkdir()
        (beat / "inside").write_text("kept")
        runner.signal(signal.SIGCONT)

        moved = env.spool / "corrupt" / f"{runner_id}.json"
        wait_until(moved.is_dir, 10, "the directory to be moved to corrupt/")
        _let_it_beat(env, runner, 20)  # four seconds: past the 3 s lease
        assert beat.is_file()
        assert (moved / "inside").read_text() == "kept"
        assert not is_gone(pid)
        assert env.status_of(job_id) == "running"
        (tmp_path / "release").touch()
        rec = env.wait_status(job_id, "completed")
    finally:
        kill_quietly(pid)
    assert outcomes(rec) == ["succeeded"]
    assert rec["attempts"][0]["runner"] == runner_id
    assert "lease_lost" not in log_text(env)
    assert "in place of" in (env.spool / "corrupt" / f"{runner_id}.json.reason.txt").read_text()
    stop_clean(runner)


@pytest.mark.parametrize("kind", ["directory", "fifo", "link"])
def test_nothing_planted_at_the_heartbeats_temporary_name_is_used(
    env: SpoolEnv, tmp_path: Path, kind: str
) -> None:
    """F4 b: the heartbeat was written to ``runners/.<id>.tmp``, a fixed name:
    a directory there failed every beat, a FIFO hung the runner for good, and
    a link was followed, so the heartbeat overwrote the file it points to."""
    runner = env.start_runner()
    runner_id = wait_registered(env.spool, runner.pid)
    tmp = env.spool / "runners" / f".{runner_id}.tmp"
    outside = tmp_path / "outside.txt"
    outside.write_text("not a heartbeat")
    _frozen(runner)
    if kind == "directory":
        tmp.mkdir()
    elif kind == "fifo":
        os.mkfifo(tmp)
    else:
        tmp.symlink_to(outside)
    runner.signal(signal.SIGCONT)

    _let_it_beat(env, runner, 20)
    assert runner.proc.poll() is None, runner.stderr()
    assert outside.read_text() == "not a heartbeat"
    assert os.path.lexists(tmp)
    assert "lease_lost" not in log_text(env)
    stop_clean(runner)


def test_a_runner_fenced_beside_a_directory_at_its_heartbeat_registers_again(
    env: SpoolEnv,
) -> None:
    """F4 b: a runner paused past its lease fences itself and releases its
    registration; a directory at its heartbeat's name made ``release()``
    raise, and the runner died instead of registering again."""
    runner = env.start_runner("--lease-seconds", "1")
    runner_id = wait_registered(env.spool, runner.pid)
    clock = env.start_runner()  # another runner: its beats tell the time
    wait_registered(env.spool, clock.pid)
    beat = env.spool / "runners" / f"{runner_id}.json"
    try:
        _frozen(runner)
        beat.unlink()
        beat.mkdir()
        _let_it_beat(env, clock, 10)  # two seconds: past the paused runner's lease
    finally:
        runner.signal(signal.SIGCONT)

    wait_until(lambda: "runner_reregistered" in log_text(env), 10, "the runner to register again")
    assert runner.proc.poll() is None, runner.stderr()
    assert (env.spool / "corrupt" / f"{runner_id}.json").is_dir()
    assert not os.path.lexists(beat)
    new_id = wait_registered(env.spool, runner.pid)
    assert new_id != runner_id
    stop_clean(runner)
    stop_clean(clock)


# ---------------------------------------------------------------- (c) the lock


def test_a_replaced_lock_is_no_proof_of_death_and_its_owner_takes_it_back(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """F4 c: an empty file over a live runner's ``.lock`` is a lock nobody
    holds. Another runner of the host judged the owner dead at its next
    check, killed its attempt and took its job ("lost on attempt 3 of 3"
    when done again and again). Here the owner is also frozen meanwhile,
    so only the lease (30 s) could make it dead."""
    env.write_config(lease_seconds=30)
    owner, owner_id, job_id, pid = _gated(env, tmp_path)
    checker = env.start_runner()
    wait_registered(env.spool, checker.pid)
    lock = env.spool / "runners" / f"{owner_id}.lock"
    planted = env.spool / "runners" / "planted.lock.part"
    try:
        _frozen(owner)
        try:
            planted.write_bytes(b"")
            os.replace(planted, lock)
            assert lock_is_free(lock)
            _let_it_beat(env, checker, 10)  # ten looks at the other runners
            assert [c.job_id for c in claims_of(env.spool, owner_id)] == [job_id]
            assert not is_gone(pid)
        finally:
            owner.signal(signal.SIGCONT)
        wait_until(
            lambda: " lock_replaced " in log_text(env), 10, "the owner to take its lock back"
        )
        assert not lock_is_free(lock)
        _let_it_beat(env, checker, 5)
        assert not is_gone(pid)
        (tmp_path / "release").touch()
        rec = env.wait_status(job_id, "completed")
    finally:
        kill_quietly(pid)
    assert outcomes(rec) == ["succeeded"]
    assert rec["attempts"][0]["runner"] == owner_id
    assert "recovered" not in log_text(env)
    stop_clean(owner)
    stop_clean(checker)


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_a_free_lock_proves_death_only_once_the_process_is_gone_and_the_beat_stands(
    tmp_path: Path,
) -> None:
    """The checker's rule, on real files and real processes: a free lock
    proves nothing while the pid the heartbeat names (with its start time)
    lives, nor while the heartbeat changes between two looks; the lease on
    the checker's own clock still decides in the end."""
    spool = Spool(tmp_path / "spool")
    folder = spool.dir("runners")
    proc = _sleeper()
    try:
        created = psutil.Process(proc.pid).create_time()
        now = datetime.now(UTC)
        beat = Heartbeat(
            runner="other-1-abcdef",
            host=hostname(),
            pid=proc.pid,
            pid_created=created,
            started_at=now,
            beat=1,
            wall=now,
        )
        (folder / "other-1-abcdef.json").write_bytes(encode(beat))
        (folder / "other-1-abcdef.lock").write_bytes(b"")  # nobody holds it
        watch = Liveness(spool, "me-1-abcdef", 5.0)
        assert watch.dead(100.0, set()) == {}  # its process lives
        assert watch.dead(104.0, set()) == {}
        proc.kill()
        proc.wait(10)
        # Gone, but its heartbeat changed since the last look: not yet.
        beat = replace(beat, beat=2)
        (folder / "other-1-abcdef.json").write_bytes(encode(beat))
        assert watch.dead(104.2, set()) == {}
        # Gone, lock free, heartbeat standing still: dead, long before the lease.
        assert watch.dead(104.4, set()) == {"other-1-abcdef": beat}
    finally:
        proc.kill()
        proc.wait(10)
    # A living process with a free lock and a silent heartbeat: the lease decides.
    me = replace(
        beat,
        runner="alive-1-abcdef",
        pid=os.getpid(),
        pid_created=psutil.Process().create_time(),
    )
    (folder / "alive-1-abcdef.json").write_bytes(encode(me))
    (folder / "alive-1-abcdef.lock").write_bytes(b"")
    watch = Liveness(spool, "me-1-abcdef", 5.0)
    assert "alive-1-abcdef" not in watch.dead(200.0, set())
    assert "alive-1-abcdef" not in watch.dead(204.9, set())
    assert watch.dead(205.0, set())["alive-1-abcdef"] == me
