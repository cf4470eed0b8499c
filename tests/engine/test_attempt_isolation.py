"""An attempt writes only its own files, through no planted link, and speaks only for itself.

F1: the attempt's report file and the spawned attempt's request had names
anyone could predict in tmp/, and were opened following links: a symlink
planted there had the runner overwrite any file with the job's params. The
job log was opened following links too. F8: every attempt wrote its report
on the runner's shared pipe, so a job could report for another attempt (or
break the runner's framing). Every test runs real runners and real attempts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jobspool.child import PIPE_ATOMIC
from jobspool.names import RunningName
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv, wait_until
from tests.support.hostile_jobs import HOSTILE_JOBS
from tests.support.hosts import wait_registered
from tests.support.spoolkit import config, job_log, log_text, stop_clean

PRECIOUS = "precious: must never change\n"


GATE = {"class": "tests.support.testjobs.Gate", "allowed_methods": ["wait"]}


def _allow_hostile(env: SpoolEnv, **settings: Any) -> None:
    jobs = {**env.settings["allowed_jobs"], **HOSTILE_JOBS, "Gate": GATE}
    env.write_config(allowed_jobs=jobs, **settings)


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text(PRECIOUS)
    return victim


def _terminal(env: SpoolEnv, job_id: str) -> str:
    status = wait_until(
        lambda: next((s for s in ("completed", "failed") if env.status_of(job_id) == s), ""),
        30,
        f"job {job_id} to end",
    )
    return status


# ---------------------------------------------------------------- F1: report and request


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_link_planted_where_the_report_used_to_go_is_never_written_through(
    env: SpoolEnv, tmp_path: Path, start_method: str
) -> None:
    """F1: links at the old, predictable report and request names for the
    next attempt; the attempt's big report (with the params) goes elsewhere."""
    env.write_config(start_method=start_method)
    victim = _victim(tmp_path)
    runner = env.start_runner()
    runner_id = wait_registered(env.spool, runner.pid)
    job_id = "planted-report"
    token = RunningName(job_id, runner_id, 1).filename[: -len(".json")]
    for name in (f"{token}.report.json", f"{token}.report.json.request"):
        (env.spool / "tmp" / name).symlink_to(victim)
    name = "n" * (PIPE_ATOMIC * 4)  # too big for the pipe: the report goes to a file
    run_background_job("Typed", "greet", {"name": name}, job_id=job_id, config=config(env))

    status = _terminal(env, job_id)
    assert victim.read_text() == PRECIOUS
    assert status == "completed"
    assert env.record("completed", job_id)["result"] == name
    stop_clean(runner)
    assert victim.read_text() == PRECIOUS


# ---------------------------------------------------------------- F1: the job log


def _plant(kind: str, log: Path, victim: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        log.symlink_to(victim)
    elif kind == "hardlink":
        os.link(victim, log)
    elif kind == "fifo":
        os.mkfifo(log)
    else:
        log.mkdir()


@pytest.mark.parametrize(
    ("kind", "start_method"),
    [
        ("symlink", "fork"),
        ("hardlink", "fork"),
        ("fifo", "fork"),
        ("directory", "fork"),
        ("symlink", "spawn"),
        ("fifo", "spawn"),
    ],
)
def test_a_job_log_that_is_not_a_plain_file_of_its_own_is_refused(
    env: SpoolEnv, tmp_path: Path, kind: str, start_method: str
) -> None:
    """F1: the attempt never writes its output through a planted link, never
    blocks on a FIFO, and the attempt says why it did not run."""
    _allow_hostile(env, start_method=start_method)
    victim = _victim(tmp_path)
    job_id = run_background_job("Printer", "say", ["secret output"], timeout=10, config=config(env))
    _plant(kind, env.spool / "logs" / "jobs" / f"{job_id}.log", victim)

    env.burst()

    assert victim.read_text() == PRECIOUS
    record = env.record("failed", job_id)
    [attempt] = record["attempts"]
    assert attempt["outcome"] == "failed"
    assert attempt["error"]["type"] == "UnsafeJobLog"
    assert f"logs/jobs/{job_id}.log" in attempt["error"]["message"]
    assert "secret output" not in victim.read_text()


# ---------------------------------------------------------------- F8: one channel per attempt


def test_a_job_cannot_report_for_another_running_attempt(env: SpoolEnv, tmp_path: Path) -> None:
    """F8: a report line carrying another attempt's token, written on every
    pipe the job holds, leaves that attempt running and its result its own."""
    _allow_hostile(env)
    runner = env.start_runner()
    started, release = tmp_path / "started", tmp_path / "release"
    victim = run_background_job("Gate", "wait", [str(started), str(release)], config=config(env))
    wait_until(started.exists, 20, "the victim to start")
    [claim] = [n for n in os.listdir(env.spool / "running") if n.startswith(victim + "~")]
    token_file = tmp_path / "token"
    token_file.write_text(claim[: -len(".json")])

    forger = run_background_job(
        "Forger", "speak", {"token_file": str(token_file)}, config=config(env)
    )
    # The only attempt a job can speak for is its own.
    assert env.wait_status(forger, "completed")["result"] == "forged"

    assert env.status_of(victim) == "running", "the forged report was taken for the victim's"
    release.write_text("go")
    done = env.wait_status(victim, "completed")
    assert done["result"] == "released after 0 bytes of padding"
    stop_clean(runner)


def test_garbage_on_the_report_channel_fails_only_its_own_attempt(env: SpoolEnv) -> None:
    """A line that is not a report (F8's crash) is logged, recorded as that
    attempt's failure, and the runner carries on."""
    _allow_hostile(env)
    runner = env.start_runner()
    bad = run_background_job("Forger", "speak", {"raw": "{garbage\n"}, config=config(env))
    record = env.wait_status(bad, "failed")
    [attempt] = record["attempts"]
    assert attempt["error"]["type"] == "BadReport"
    assert "not a report" in attempt["error"]["message"]
    good = run_background_job("Typed", "add", [2, 3], config=config(env))
    assert env.wait_status(good, "completed")["result"] == 5
    assert "bad_report" in log_text(env)
    assert runner.proc.poll() is None
    stop_clean(runner)


def test_a_line_without_an_end_cannot_swallow_the_runners_messages(env: SpoolEnv) -> None:
    """Bytes with no newline on a shared pipe would glue themselves to the
    next status line; on an attempt's own channel they stay its own."""
    _allow_hostile(env)
    runner = env.start_runner()
    bad = run_background_job("Forger", "speak", {"raw": '{"outcome": '}, config=config(env))
    others = [run_background_job("Typed", "add", [n, 1], config=config(env)) for n in range(4)]
    assert [env.wait_status(j, "completed")["result"] for j in others] == [1, 2, 3, 4]
    record = env.wait_status(bad, "failed")
    assert record["attempts"][0]["error"]["type"] == "BadReport"
    assert job_log(env, bad) == ""
    stop_clean(runner)
