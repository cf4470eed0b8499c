"""Which job runs first: priority, then age; delayed jobs wait for their time."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv, wait_until
from tests.support.spoolkit import (
    config,
    drop_aged,
    job_doc,
    ledger_lines,
    log_text,
    stop_clean,
    when,
)


def test_priority_then_age_decides_the_order(env: SpoolEnv, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    cfg = config(env)
    submitted = {}
    for label, priority in (
        ("low", 0),
        ("high", 10),
        ("medium", 5),
        ("high-later", 10),
        ("negative", -3),
        ("medium-later", 5),
    ):
        submitted[label] = run_background_job(
            "Ledger", "record", [str(ledger)], priority=priority, config=cfg
        )
    result = env.burst("--workers", "1")
    assert result.returncode == 0, result.stderr
    names = {v: k for k, v in submitted.items()}
    order = [names[job_id] for job_id, _attempt in ledger_lines(ledger)]
    assert order == ["high", "high-later", "medium", "medium-later", "low", "negative"]
    # The attempts' start times tell the same story.
    starts = [
        when(env.record("completed", submitted[n])["attempts"][0]["started_at"]) for n in order
    ]
    assert starts == sorted(starts)


def test_hand_dropped_jobs_are_ordered_by_age_within_a_priority(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """A dropped file has no created_at; its age is the file's own time."""
    ledger = tmp_path / "ledger"
    cfg = config(env)
    fresh = run_background_job("Ledger", "record", [str(ledger)], config=cfg)
    ages = {"a.json": 10.0, "b.json": 50.0, "c.json": 30.0, "urgent.json": 1.0}
    for name, age in ages.items():
        extra = {"priority": 1} if name == "urgent.json" else {}
        drop_aged(env, name, job_doc("Ledger", "record", [str(ledger)], **extra), age=age)
    result = env.burst("--workers", "1")
    assert result.returncode == 0, result.stderr
    order = [job_id for job_id, _attempt in ledger_lines(ledger)]
    # urgent first (priority 1); then oldest first: b (50 s), c (30 s), a (10 s),
    # and the job submitted just now comes last.
    assert order == ["urgent", "b", "c", "a", fresh]


def test_delayed_job_waits_burst_leaves_it_and_a_daemon_runs_it_when_due(
    env: SpoolEnv, tmp_path: Path
) -> None:
    cfg = config(env)
    soon_mark, later_mark, now_mark = (tmp_path / n for n in ("soon", "later", "now"))
    later = run_background_job("Marker", "touch", [str(later_mark)], delay=60, config=cfg)
    now = run_background_job("Marker", "touch", [str(now_mark)], config=cfg)
    started = time.monotonic()
    result = env.burst()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30  # did not sit out the 60 s delay
    assert env.status_of(now) == "completed"
    assert env.status_of(later) == "pending"
    assert not later_mark.exists()

    runner = env.start_runner()
    wait_until(lambda: "runner_started" in log_text(env), 15, "the runner to start")
    soon = run_background_job("Marker", "touch", [str(soon_mark)], delay=1.5, config=cfg)
    due = when(env.record("pending", soon)["not_before"])
    rec = env.wait_status(soon, "completed", timeout=20)
    assert when(rec["attempts"][0]["started_at"]) >= due
    assert soon_mark.exists()
    assert env.status_of(later) == "pending"
    assert not later_mark.exists()
    stop_clean(runner)
    assert env.record("pending", later)["attempts"] == []


def test_concurrency_cap_limits_one_job_name_but_not_the_others(
    env: SpoolEnv, tmp_path: Path
) -> None:
    jobs = dict(env.settings["allowed_jobs"])
    jobs["Sleeper"] = {**jobs["Sleeper"], "concurrency": 1}
    env.write_config(allowed_jobs=jobs, workers=2)
    cfg = config(env)
    sleepers = [
        run_background_job("Sleeper", "sleep", [0.3], priority=5, config=cfg) for _ in range(3)
    ]
    other = run_background_job("Marker", "touch", [str(tmp_path / "m")], config=cfg)
    result = env.burst()
    assert result.returncode == 0, result.stderr
    windows = sorted(
        (when(a["started_at"]), when(a["finished_at"]))
        for a in (env.record("completed", s)["attempts"][0] for s in sleepers)
    )
    for (_start, end), (next_start, _end) in itertools.pairwise(windows):
        assert next_start >= end, windows  # never two Sleepers at once
    marker_start = when(env.record("completed", other)["attempts"][0]["started_at"])
    assert marker_start < windows[0][1]  # the free slot went to another job
