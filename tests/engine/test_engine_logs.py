"""The two seed logs, per-job logs, and progress reports."""

from __future__ import annotations

import re
from pathlib import Path

from jobspool.progress import read_progress
from jobspool.spool import Spool
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv, wait_until
from tests.support.spoolkit import allow_extra_jobs, config, job_log, log_text, stop_clean

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _line(text: str, level: str, action: str, job_id: str) -> str | None:
    found = re.search(rf"^{STAMP} {level} {action} job={re.escape(job_id)} .*$", text, re.M)
    return found.group(0) if found else None


def _records(text: str) -> list[str]:
    """Log records, each with its continuation lines (a traceback)."""
    return [r for r in re.split(rf"(?m)^(?={STAMP} )", text) if r]


def _record(text: str, level: str, action: str, job_id: str) -> str:
    head = re.compile(rf"{STAMP} {level} {action} job={re.escape(job_id)} ")
    found = [r for r in _records(text) if head.match(r)]
    assert len(found) == 1, text
    return found[0]


def test_main_log_has_a_line_per_transition(env: SpoolEnv, tmp_path: Path) -> None:
    cfg = config(env)
    ok = run_background_job("SampleJob", "process", ["a"], config=cfg)
    bad = run_background_job("Failing", "bad", ["nope"], config=cfg)
    flaky = run_background_job("Flaky", "run", [str(tmp_path / "counter"), 1], config=cfg)
    runner = env.start_runner()
    for job_id, status in ((ok, "completed"), (bad, "failed"), (flaky, "completed")):
        env.wait_status(job_id, status)
    stop_clean(runner)
    text = log_text(env)

    started = _line(text, "INFO", "started", ok)
    assert started is not None, text
    assert "name=SampleJob.process attempt=1 pid=" in started
    completed = _line(text, "INFO", "completed", ok)
    assert completed is not None, text
    assert "name=SampleJob.process attempt=1 outcome=succeeded duration=" in completed
    failed = _line(text, "ERROR", "failed", bad)
    assert failed is not None, text
    assert "outcome=failed" in failed
    assert 'error="BadInput: nope"' in failed
    retry = _line(text, "INFO", "retry_scheduled", flaky)
    assert retry is not None, text
    assert "attempt=1 outcome=failed" in retry and "next_at=" in retry
    assert _line(text, "INFO", "completed", flaky) is not None
    assert re.search(rf"^{STAMP} INFO runner_started runner=", text, re.M)
    assert re.search(rf"^{STAMP} INFO runner_stopped runner=", text, re.M)


def test_submissions_are_logged(env: SpoolEnv) -> None:
    """background_jobs.log keeps one line per transition, the first one included."""
    out = env.runjob("SampleJob", "process", "a", "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    helper_id = run_background_job("SampleJob", "process", ["b"], config=config(env))
    text = log_text(env)
    assert _line(text, "INFO", "submitted", job_id) is not None, text
    assert _line(text, "INFO", "submitted", helper_id) is not None, text


def test_errors_log_keeps_tracebacks(env: SpoolEnv, tmp_path: Path) -> None:
    cfg = config(env)
    bad = run_background_job("Failing", "bad", ["broken input"], config=cfg)
    flaky = run_background_job("Flaky", "run", [str(tmp_path / "counter"), 1], config=cfg)
    runner = env.start_runner()
    env.wait_status(bad, "failed")
    env.wait_status(flaky, "completed")
    stop_clean(runner)
    errors = log_text(env, "background_jobs_errors.log")
    failed = _record(errors, "ERROR", "failed", bad)
    assert "Traceback (most recent call last):" in failed
    assert ", in bad" in failed
    assert "BadInput: broken input" in failed
    attempt = _record(errors, "ERROR", "attempt_error", flaky)
    assert "Traceback (most recent call last):" in attempt
    assert "RuntimeError: planned failure 1 of 1" in attempt
    # Successes stay out of the errors log.
    assert f"completed job={flaky}" not in errors


def test_job_log_captures_stdout_stderr_and_grandchildren(env: SpoolEnv) -> None:
    allow_extra_jobs(env)
    job_id = run_background_job("Chatty", "speak", ["to stdout", "to stderr"], config=config(env))
    result = env.burst()
    assert result.returncode == 0, result.stderr
    assert env.record("completed", job_id)["result"] == "spoke"
    lines = job_log(env, job_id).splitlines()
    assert "to stdout" in lines
    assert "to stderr" in lines
    assert "to stdout from a grandchild" in lines


def test_progress_is_visible_live_and_kept_in_the_final_record(env: SpoolEnv) -> None:
    job_id = run_background_job("Progressing", "steps", [4, 0.25], config=config(env))
    runner = env.start_runner()
    reader = Spool(env.spool, create=False)

    def midway() -> bool:
        progress = read_progress(reader, job_id)
        return (
            progress is not None and progress.fraction is not None and (0 < progress.fraction < 1)
        )

    wait_until(midway, 15, "progress to be reported while the job runs")
    rec = env.wait_status(job_id, "completed")
    stop_clean(runner)
    assert rec["result"] == 4
    assert rec["progress"]["fraction"] == 1.0
    assert rec["progress"]["message"] == "step 4"
    assert rec["progress"]["updated_at"] is not None
    assert read_progress(reader, job_id) is None  # the live side file is gone
