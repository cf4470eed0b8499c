"""The jobspool inspection commands and their --json shapes."""

from __future__ import annotations

import json
import re
from typing import Any

from jobspool.steering import list_jobs
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv, wait_until
from tests.support.spoolkit import (
    allow_extra_jobs,
    assert_one_line_error,
    config,
    drop_aged,
    stop_clean,
)

RECORD_KEYS = {"id", "job", "method", "params", "status", "priority", "attempts", "result", "error"}
ATTEMPT_KEYS = {
    "number",
    "runner",
    "host",
    "pid",
    "started_at",
    "finished_at",
    "outcome",
    "exit_code",
    "signal",
    "error",
}


def _json(env: SpoolEnv, *args: str) -> Any:
    out = env.cli(*args, "--json", "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return json.loads(out.stdout)


def test_status_list_and_show_shapes(env: SpoolEnv) -> None:
    cfg = config(env)
    done = run_background_job("SampleJob", "process", ["a", "b"], priority=3, config=cfg)
    bad = run_background_job("Failing", "bad", ["nope"], config=cfg)
    waiting = run_background_job("Typed", "add", [1, 2], delay=60, config=cfg)
    drop_aged(env, "junk.json", b"not a job")
    assert env.burst().returncode == 0

    status = _json(env, "status")
    assert set(status) == {"spool", "counts", "runners", "paused", "limits"}
    assert status["paused"] == {"spool": None, "jobs": {}, "refused": {}}
    assert status["limits"] == {}  # no job has a spool-wide cap or a rate
    assert status["spool"] == str(env.spool.resolve())
    assert status["counts"] == {
        "pending": 1,
        "running": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "corrupt": 1,
    }
    assert status["runners"] == []

    listed = _json(env, "list")
    assert isinstance(listed, list)
    by_id = {r["id"]: r for r in listed}
    assert set(by_id) == {done, bad, waiting}
    for rec in listed:
        assert set(rec) >= RECORD_KEYS, sorted(RECORD_KEYS - set(rec))
        assert isinstance(rec["attempts"], list)
    assert by_id[done]["status"] == "completed"
    assert by_id[done]["result"] == {"processed": ["a", "b"], "named": {}, "count": 2}
    assert by_id[done]["priority"] == 3
    assert by_id[done]["params"] == ["a", "b"]
    assert (by_id[done]["job"], by_id[done]["method"]) == ("SampleJob", "process")
    assert by_id[bad]["status"] == "failed"
    assert by_id[bad]["error"]["type"] == "BadInput"
    assert by_id[waiting]["status"] == "pending"
    assert by_id[waiting]["attempts"] == []
    assert by_id[waiting]["result"] is None

    only_failed = _json(env, "list", "--status", "failed")
    assert [r["id"] for r in only_failed] == [bad]

    shown = _json(env, "show", done)
    assert set(shown) >= RECORD_KEYS
    assert shown["id"] == done
    assert shown["status"] == "completed"
    assert len(shown["attempts"]) == 1
    assert set(shown["attempts"][0]) >= ATTEMPT_KEYS
    assert shown["attempts"][0]["outcome"] == "succeeded"
    assert shown["attempts"][0]["number"] == 1
    assert "items=['a', 'b']" in shown["log_tail"]
    assert shown["live_progress"] is None
    assert shown["unique_lock_held"] is None  # not a unique job
    extra = {"log_tail": shown["log_tail"], "live_progress": None, "unique_lock_held": None}
    assert shown == {**by_id[done], **extra}

    # The same, for people.
    out = env.cli("show", bad, "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    assert f"id:        {bad}\nstatus:    failed\njob:       Failing.bad\n" in out.stdout
    assert "reason:    BadInput is not retryable" in out.stdout
    assert "attempt 1: failed on " in out.stdout
    assert "BadInput: nope" in out.stdout
    listing = env.cli("list", "--config", str(env.config))
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert len(lines) == 3
    assert any(line.startswith(done) and " completed " in line for line in lines)


def test_status_json_lists_a_live_runner(env: SpoolEnv) -> None:
    runner = env.start_runner()
    try:
        wait_until(
            lambda: (
                list((env.spool / "runners").glob("*.json"))
                if (env.spool / "runners").exists()
                else []
            ),
            15,
            "the runner to register",
        )
        status = _json(env, "status")
        assert len(status["runners"]) == 1
        live = status["runners"][0]
        assert live["pid"] == runner.pid
        assert live["running"] == 0
        assert set(live) == {"runner", "host", "pid", "running", "heartbeat"}
    finally:
        stop_clean(runner)
    assert _json(env, "status")["runners"] == []


def test_show_of_an_unknown_or_invalid_id_is_refused(env: SpoolEnv) -> None:
    out = env.cli("show", "20200101-000000-000000-00000000", "--config", str(env.config))
    assert_one_line_error(out, "jobspool", "no job with id")
    out = env.cli("show", "../../etc/passwd", "--config", str(env.config))
    assert_one_line_error(out, "jobspool", "no job with id")


def test_submit_command_is_runjob(env: SpoolEnv) -> None:
    out = env.cli(
        "submit", "SampleJob", "process", "x,y", "--priority", "2", "--config", str(env.config)
    )
    assert out.returncode == 0, out.stderr
    rec = env.record("pending", out.stdout.strip())
    assert (rec["params"], rec["priority"]) == (["x", "y"], 2)
    assert rec["history"][0]["via"] == "cli"


def test_list_and_show_tell_waiting_jobs_from_ready_ones(env: SpoolEnv) -> None:
    """A job waiting for its retry and a delayed one are not "pending": list
    and show say what they wait for and when (local time and "in ...")."""
    cfg = config(env)
    retrying = run_background_job("Flaky", "ask_retry", [str(env.root / "calls"), 3600], config=cfg)
    delayed = run_background_job("Typed", "add", [1, 2], delay=600, config=cfg)
    assert env.burst().returncode == 0  # one attempt, which asks to retry in an hour
    ready = run_background_job("Typed", "add", [3, 4], config=cfg)

    lines = {ln.split()[0]: ln for ln in env.cli("list", check=True).stdout.splitlines()}
    assert lines[ready].split()[1] == "pending" and " due " not in lines[ready]
    assert lines[retrying].split()[1] == "retrying"
    assert re.search(r" due \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(in 1 h\)", lines[retrying])
    assert lines[delayed].split()[1] == "scheduled"
    assert "(in 10 min)" in lines[delayed]

    only = env.cli("list", "--status", "scheduled", check=True).stdout.splitlines()
    assert [ln.split()[0] for ln in only] == [delayed, retrying]  # soonest due first
    assert [v.id for v in list_jobs(status="scheduled", config=cfg)] == [delayed, retrying]

    shown = env.cli("show", retrying, check=True).stdout
    assert re.search(r"^due:\s+.* \(in 1 h\)  \(retrying\)$", shown, re.M), shown
    assert re.search(r"^next_attempt_at: .* \(in 1 h\)$", shown, re.M), shown
    assert "due:" not in env.cli("show", ready, check=True).stdout


def test_show_and_list_never_pass_terminal_escapes_through(env: SpoolEnv) -> None:
    """What a job prints or raises reaches the terminal escaped: an escape
    sequence from job code cannot clear the screen or hide a line."""
    allow_extra_jobs(env)
    cfg = config(env)
    trap = "\x1b[2J\x1b]0;owned\x07 cleared"
    chatty = run_background_job("Chatty", "speak", [f"out {trap}\tcol", "err"], config=cfg)
    bad = run_background_job("Failing", "bad", [f"bad {trap}"], config=cfg)
    assert env.burst().returncode == 0
    shown_out = env.cli("show", chatty, "--config", str(env.config), check=True).stdout
    assert "\x1b" not in shown_out and "\x07" not in shown_out
    assert "out \\x1b[2J\\x1b]0;owned\\x07 cleared\tcol" in shown_out  # tabs stay
    failed = env.cli("show", bad, "--config", str(env.config), check=True).stdout
    listed = env.cli("list", "--config", str(env.config), check=True).stdout
    for text in (failed, listed):
        assert "\x1b" not in text and "\\x1b[2J" in text
