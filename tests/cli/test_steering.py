"""Steering jobs from Python (cancel_job, retry_job, list_jobs), eager mode's
raise_errors, and the command line's help, version and output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from jobspool import (
    Conflict,
    InvalidParams,
    JobNotFound,
    cancel_job,
    current_job,
    get_job,
    list_jobs,
    retry_job,
    run_background_job,
    timetext,
)
from jobspool.cli import build_parser
from jobspool.context import set_current
from tests.conftest import TEST_JOBS, SpoolEnv, wait_until
from tests.support.spoolkit import assert_one_line_error, config, spool_files, stop_clean
from tests.support.testjobs import BadInput

# The commands jobspool.cli defines itself (others come from plugins).
OWN_COMMANDS = {"runner", "submit", "status", "list", "show", "cancel", "retry", "init", "doctor"}
LONG_ERROR = " ".join(f"word{n}" for n in range(40))


@pytest.fixture(autouse=True)
def _no_context_between_tests() -> Iterator[None]:
    """Eager runs execute in this process; never let one test see another's job context."""
    set_current(None)
    yield
    set_current(None)


def _history(env: SpoolEnv, status: str, job_id: str) -> list[tuple[str, str, str]]:
    rec = env.record(status, job_id)
    return [(h["action"], h["by"], h["via"]) for h in rec["history"]]


# ------------------------------------------------------------------ the Python API


def test_cancel_job_pending_at_once_and_running_through_its_runner(
    env: SpoolEnv, tmp_path: Path
) -> None:
    cfg = config(env)
    later = run_background_job("Marker", "touch", [str(tmp_path / "never")], delay=600, config=cfg)
    assert cancel_job(later, config=cfg, by="ops@example") == "cancelled"
    assert env.status_of(later) == "cancelled"
    assert _history(env, "cancelled", later)[-1] == ("cancelled", "ops@example", "python")
    with pytest.raises(Conflict, match="cancelled"):
        cancel_job(later, config=cfg)
    with pytest.raises(JobNotFound):
        cancel_job("no-such-job", config=cfg)

    started = tmp_path / "started"
    runner = env.start_runner()
    busy = run_background_job(
        "Sleeper", "sleep", {"seconds": 60, "started": str(started)}, config=cfg
    )
    wait_until(started.exists, 20, "the sleeper to start")
    assert cancel_job(busy, config=str(env.config)) == "requested"
    rec = env.wait_status(busy, "cancelled")
    assert [a["outcome"] for a in rec["attempts"]] == ["cancelled"]
    assert not (tmp_path / "never").exists()
    stop_clean(runner)


def test_retry_job_sends_a_failed_job_back_and_a_runner_runs_it_again(env: SpoolEnv) -> None:
    cfg = config(env)
    bad = run_background_job("Failing", "bad", ["nope"], config=cfg)
    assert env.burst().returncode == 0
    assert env.status_of(bad) == "failed"

    view = retry_job(bad, config=cfg, by="ops@example")
    assert (view.id, view.status) == (bad, "pending")
    assert view.record.error is None
    assert env.status_of(bad) == "pending"
    assert _history(env, "pending", bad)[-1] == ("retried", "ops@example", "python")
    with pytest.raises(Conflict, match="pending"):
        retry_job(bad, config=cfg)

    assert env.burst().returncode == 0
    again = get_job(bad, config=cfg)
    assert again.status == "failed"
    assert [a.outcome.value for a in again.record.attempts] == ["failed", "failed"]
    with pytest.raises(JobNotFound):
        retry_job("no-such-job", config=cfg)


def test_list_jobs_has_the_filters_of_jobspool_list(env: SpoolEnv, tmp_path: Path) -> None:
    cfg = config(env)
    done = run_background_job("Marker", "touch", [str(tmp_path / "m")], config=cfg)
    bad = run_background_job("Failing", "bad", ["nope"], config=cfg)
    assert env.burst().returncode == 0
    low = run_background_job("Typed", "add", [1, 2], delay=600, config=cfg)
    high = run_background_job("Typed", "add", [3, 4], delay=600, priority=5, config=cfg)

    assert [v.id for v in list_jobs(status="failed", config=cfg)] == [bad]
    assert [v.id for v in list_jobs(status="completed", config=cfg)] == [done]
    assert [v.id for v in list_jobs(status="pending", config=cfg)] == [high, low]
    everything = list_jobs(config=cfg)
    assert {v.id: v.status for v in everything} == {
        done: "completed",
        bad: "failed",
        low: "pending",
        high: "pending",
    }
    assert [v.id for v in list_jobs(limit=1, config=cfg)] == [high]
    assert list_jobs(limit=0, config=cfg) == []

    out = env.cli("list", "--json", "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    assert [r["id"] for r in json.loads(out.stdout)] == [v.id for v in everything]

    with pytest.raises(InvalidParams, match="unknown status 'lost'"):
        list_jobs(status="lost", config=cfg)
    with pytest.raises(InvalidParams, match="limit"):
        list_jobs(limit=-1, config=cfg)


def test_eager_raise_errors_re_raises_the_jobs_exception(env: SpoolEnv, tmp_path: Path) -> None:
    env.write_config(eager=True)
    cfg = config(env)
    with pytest.raises(BadInput, match=r"^nope$"):
        run_background_job(
            "Failing", "bad", ["nope"], job_id="eager-bad", raise_errors=True, config=cfg
        )
    assert current_job() is None
    kept = get_job("eager-bad")
    assert kept.status == "failed"
    assert kept.record.error is not None
    assert (kept.record.error.type, kept.record.error.message) == ("BadInput", "nope")
    assert kept.record.error.traceback is not None
    assert "BadInput" in kept.record.error.traceback

    marker = tmp_path / "marker"
    ok = run_background_job("Marker", "touch", [str(marker)], raise_errors=True, config=cfg)
    assert marker.read_text() == "ran"
    assert get_job(ok).status == "completed"
    assert get_job(ok).record.result == "ran"

    quiet = run_background_job("Failing", "bad", ["nope"], config=cfg)
    assert get_job(quiet).status == "failed"  # without raise_errors: a failed record
    assert spool_files(env) == []


def test_raise_errors_does_not_run_a_queued_job(env: SpoolEnv) -> None:
    cfg = config(env)
    job_id = run_background_job("Failing", "bad", ["nope"], raise_errors=True, config=cfg)
    assert env.status_of(job_id) == "pending"


# ------------------------------------------------------------------ the command line


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("jobspool has no subcommands")


def test_every_command_and_option_has_help() -> None:
    commands = _subcommands()
    assert set(commands) >= OWN_COMMANDS
    for name in sorted(OWN_COMMANDS):
        parser = commands[name]
        assert parser.description, f"jobspool {name} has no description"
        for action in parser._actions:
            label = "/".join(action.option_strings) or action.dest
            assert action.help, f"jobspool {name} {label} has no help"


def test_help_and_version_from_real_processes(env: SpoolEnv) -> None:
    out = env.cli("list", "--help")
    assert out.returncode == 0, out.stderr
    assert "only jobs in this status" in out.stdout
    assert "at most this many jobs" in out.stdout

    for prog in ("jobspool", "runjob"):
        out = env.cli("--version", prog=prog)
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"{prog} {version('jobspool')}\n"


def test_runjob_with_no_arguments_says_what_it_needs(env: SpoolEnv) -> None:
    out = env.runjob()
    assert_one_line_error(out, "runjob", "runjob JOB METHOD [PARAMS ...]")
    assert "params are optional" in out.stderr
    assert env.files("pending") == []


def test_list_cuts_long_errors_at_a_word_boundary(env: SpoolEnv) -> None:
    bad = run_background_job("Failing", "bad", [LONG_ERROR], config=config(env))
    assert env.burst().returncode == 0
    out = env.cli("list", "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    [line] = out.stdout.splitlines()
    assert line.startswith(bad)
    assert line.endswith("…")
    shown = line.split("BadInput: ", 1)[1].removesuffix("…")
    assert shown.split() == LONG_ERROR.split()[: len(shown.split())]
    assert 0 < len(shown.split()) < 40
    assert len(f"BadInput: {shown}…") <= 60


def test_show_prints_what_the_record_holds(env: SpoolEnv, tmp_path: Path) -> None:
    slow_retry: dict[str, Any] = {
        "class": "tests.support.testjobs.Flaky",
        "allowed_methods": ["run"],
        "retry": {"max_attempts": 3, "delay_seconds": 600, "jitter": 0},
    }
    env.write_config(allowed_jobs={**TEST_JOBS, "SlowRetry": slow_retry})
    cfg = config(env)
    later = run_background_job(
        "Marker",
        "touch",
        [str(tmp_path / "m")],
        delay=600,
        max_attempts=1,
        timeout=5,
        submitted_by="alice@build",
        config=cfg,
    )
    flaky = run_background_job("SlowRetry", "run", [str(tmp_path / "n"), 5], config=cfg)
    assert env.burst().returncode == 0

    shown = _show(env, later)
    rec = env.record("pending", later)
    assert shown["submitted_by"] == "alice@build"
    not_before = get_job(later, config=cfg).record.not_before
    assert not_before is not None
    assert shown["not_before"] == f"{timetext.local(not_before)} (in 10 min)"
    assert rec["not_before"] is not None
    assert shown["max_attempts"] == "1"
    assert shown["timeout_seconds"] == "5.0"
    assert "next_attempt_at" not in shown

    retrying = _show(env, flaky)
    retry_at = get_job(flaky, config=cfg).record.next_attempt_at
    assert retry_at is not None
    assert retrying["next_attempt_at"] == f"{timetext.local(retry_at)} (in 10 min)"
    assert retrying["error"] == "RuntimeError: planned failure 1 of 5"
    assert "not_before" not in retrying


def _show(env: SpoolEnv, job_id: str) -> dict[str, str]:
    out = env.cli("show", job_id, "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    fields = {}
    for line in out.stdout.splitlines():
        label, sep, value = line.partition(": ")
        if sep and " " not in label:
            fields[label] = value.strip()
    return fields
