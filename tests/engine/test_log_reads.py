"""Job logs and progress files are read and cut without following links (F7).

``logs/jobs/`` is written by job code, so what stands at a job's log or
progress name may be a symbolic link, a hard link to a file elsewhere, a
FIFO, or the directory itself may be swapped for a link. The runner's log
cap must never cut anything but the job's own log; the runner's finish,
``jobspool show`` and the dashboard must never follow a link there, block on
a FIFO, or read more than their cap. Every case is real files; the readers
are the real runner and the real command line.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from jobspool import logs, progress
from jobspool.model import Job
from jobspool.names import RunningName
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import TEST_JOBS, SpoolEnv, wait_until
from tests.support.spoolkit import stop_clean

GATE = {"class": "tests.support.testjobs.Gate", "allowed_methods": ["wait"]}
CAP = 512 * 1024
PROGRESS = json.dumps({"fraction": 0.5, "message": "from outside the spool"})


def outside_file(tmp_path: Path, size: int = 2 * 1024 * 1024) -> tuple[Path, bytes]:
    """A file outside the spool, with content that shows any cut."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir(exist_ok=True)
    data = bytes(range(256)) * (size // 256)
    path.write_bytes(data)
    return path, data


def finished(spool: Spool) -> str:
    """A completed job, made through the spool's own moves."""
    job_id = spool.submit(Job(job="Marker", method="touch", params=["x"]))
    claim = spool.claim(f"{job_id}.json", RunningName(job_id, "runner-a", 1))
    assert claim is not None
    spool.finish(claim, Status.COMPLETED, spool.seal(spool.read_job(claim), {"result": "x"}))
    return job_id


def show(env: SpoolEnv, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return env.cli("show", *args, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"jobspool show {' '.join(args)} hung")


# ---------------------------------------------------------------- the runner's log cap


def test_the_log_cap_never_cuts_the_file_a_symbolic_link_points_to(tmp_path: Path) -> None:
    """F7: a symlink at logs/jobs/<id>.log made the cap truncate its 2 MB target."""
    spool = Spool(tmp_path / "spool")
    target, data = outside_file(tmp_path)
    os.symlink(target, spool.job_log_file("victim"))
    assert logs.cap_file(spool.job_log_file("victim"), CAP) is False
    assert target.read_bytes() == data


def test_the_log_cap_never_cuts_a_file_with_another_name(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    target, data = outside_file(tmp_path)
    os.link(target, spool.job_log_file("victim"))
    assert logs.cap_file(spool.job_log_file("victim"), CAP) is False
    assert target.read_bytes() == data


def test_the_log_cap_never_cuts_through_a_swapped_jobs_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    target, data = outside_file(tmp_path)
    os.rename(target, target.with_name("victim.log"))
    jobs_dir = spool.log_dir / "jobs"
    os.rmdir(jobs_dir)
    os.symlink(target.parent, jobs_dir)
    assert logs.cap_file(spool.job_log_file("victim"), CAP) is False
    assert target.with_name("victim.log").read_bytes() == data


def test_the_log_cap_passes_a_fifo_and_still_cuts_a_real_log(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    os.mkfifo(spool.job_log_file("fifo"))
    assert logs.cap_file(spool.job_log_file("fifo"), CAP) is False
    own = Path(spool.job_log_file("own"))
    own.write_bytes(b"x" * (CAP + 1))
    assert logs.cap_file(str(own), CAP) is True
    assert own.read_bytes() == b"x" * (CAP // 2) + logs.TRUNCATED


def test_a_running_job_cannot_make_the_runner_cut_a_file_outside(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """The runner caps each running job's log at every heartbeat."""
    env.write_config(
        allowed_jobs={**TEST_JOBS, "Gate": GATE},
        logs={"job_log_max_bytes": 1024},
    )
    started, release = tmp_path / "started", tmp_path / "release"
    spool = Spool(env.spool)
    job_id = spool.submit(Job(job="Gate", method="wait", params=[str(started), str(release)]))
    runner = env.start_runner()
    wait_until(started.exists, what="the job to start")
    target, data = outside_file(tmp_path, 64 * 1024)
    log = Path(spool.job_log_file(job_id))
    log.unlink()
    log.symlink_to(target)

    beats = env.spool / "runners"
    seen: set[bytes] = set()

    def beats_after_the_link() -> bool:
        for name in os.listdir(beats):
            if name.endswith(".json"):
                seen.add((beats / name).read_bytes())
        return len(seen) >= 3

    wait_until(beats_after_the_link, what="two heartbeats after the link was planted")
    release.touch()
    env.wait_status(job_id, "completed")
    assert target.read_bytes() == data
    stop_clean(runner)


# ---------------------------------------------------------------- progress


def test_the_runner_finishes_a_job_whose_progress_file_became_a_fifo(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """F7: reading progress blocked on a FIFO; at a finish that stops the runner's loop."""
    spool = Spool(env.spool)
    job_id = spool.submit(Job(job="Progressing", method="steps", params=[1, 2.0]))
    runner = env.start_runner()
    where = Path(progress.progress_path(spool, job_id))
    wait_until(where.exists, what="the job's first progress report")
    where.unlink()
    os.mkfifo(where)
    record = env.wait_status(job_id, "completed")
    assert record["result"] == 1
    stop_clean(runner)


def test_show_reads_no_progress_through_a_fifo_or_a_link(env: SpoolEnv, tmp_path: Path) -> None:
    spool = Spool(env.spool)
    fifo, linked = finished(spool), finished(spool)
    os.mkfifo(progress.progress_path(spool, fifo))
    outside = tmp_path / "progress.json"
    outside.write_text(PROGRESS)
    progress.progress_path(spool, linked).symlink_to(outside)
    for job_id in (fifo, linked):
        out = show(env, job_id, "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["live_progress"] is None
    assert progress.read_progress(spool, linked) is None


# ---------------------------------------------------------------- jobspool show


def test_show_never_prints_a_file_a_log_link_points_to(env: SpoolEnv, tmp_path: Path) -> None:
    """F7: `jobspool show` printed /etc/passwd through a symlinked log."""
    spool = Spool(env.spool)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:the-secret-line\n")
    linked, hard = finished(spool), finished(spool)
    Path(spool.job_log_file(linked)).symlink_to(secret)
    os.link(secret, spool.job_log_file(hard))
    for job_id in (linked, hard):
        for args in ((job_id,), (job_id, "--json")):
            out = show(env, *args)
            assert out.returncode == 0, out.stderr
            assert "the-secret-line" not in out.stdout


def test_show_does_not_hang_on_a_fifo_log(env: SpoolEnv) -> None:
    """F7: `jobspool show` hung on a FIFO at the log's name."""
    spool = Spool(env.spool)
    job_id = finished(spool)
    os.mkfifo(spool.job_log_file(job_id))
    out = show(env, job_id)
    assert out.returncode == 0, out.stderr
    assert f"id:        {job_id}" in out.stdout


def test_show_reads_only_the_tail_of_a_huge_log(env: SpoolEnv) -> None:
    spool = Spool(env.spool)
    job_id = finished(spool)
    with open(spool.job_log_file(job_id), "wb") as fh:
        fh.truncate(4 << 30)  # 4 GB of holes: reading it all would take long
        fh.seek(0, os.SEEK_END)
        fh.write(b"\nthe last line\n")
    out = show(env, job_id, "--log-lines", "1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("log tail:\nthe last line")
