"""Retention: the pure rule, the config, and real runners enforcing it on real spools."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobspool import purgesummary
from jobspool.config import load_config
from jobspool.errors import ConfigError
from jobspool.retention import Candidate, Policy, is_due, parse_age, select, show_age
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv, wait_until
from tests.support.finished import make_finished, side_files, where
from tests.support.finished import summary as summary_of

DAY = 86400.0
NOW = 1_800_000_000.0
POLICY: Policy = {Status.COMPLETED: 7 * DAY, Status.FAILED: 30 * DAY, Status.CANCELLED: None}


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# ---------------------------------------------------------------- the pure rule


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 7 * DAY),
        ("12h", 43200.0),
        ("30m", 1800.0),
        ("45s", 45.0),
        ("2w", 14 * DAY),
        ("90", 90.0),
        (3600, 3600.0),
        ("0s", 0.0),
        ("1.5h", 5400.0),
        ("keep", None),
        ("KEEP", None),
    ],
)
def test_ages_are_read_in_units(text: object, seconds: float | None) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("bad", ["7 days", "-1d", "d", "", True, None, [], "99999w"])
def test_an_age_that_cannot_be_read_is_refused_in_one_line(bad: object) -> None:
    with pytest.raises(ValueError) as err:
        parse_age(bad)
    assert "\n" not in str(err.value)


def test_ages_are_shown_in_their_largest_exact_unit() -> None:
    assert [show_age(s) for s in (7 * DAY, 5400.0, 90.0, None)] == ["1w", "90m", "90s", "keep"]


def test_due_once_the_age_reaches_the_status_retention_and_never_when_kept() -> None:
    assert is_due(Status.COMPLETED, NOW - 7 * DAY, POLICY, NOW)
    assert not is_due(Status.COMPLETED, NOW - 7 * DAY + 1, POLICY, NOW)
    assert not is_due(Status.CANCELLED, 0.0, POLICY, NOW)  # keep
    assert not is_due(Status.PENDING, 0.0, {Status.PENDING: 0.0}, NOW)  # never a live job
    assert not is_due(Status.RUNNING, 0.0, {Status.RUNNING: 0.0}, NOW)
    assert is_due(Status.FAILED, NOW - 31 * DAY, POLICY, NOW)
    assert not is_due(Status.FAILED, NOW - 29 * DAY, POLICY, NOW)


def test_select_keeps_only_due_jobs_of_the_job_asked_for() -> None:
    c = [
        Candidate(Status.COMPLETED, "a.json", "A", NOW - 8 * DAY),
        Candidate(Status.COMPLETED, "b.json", "B", NOW - 8 * DAY),
        Candidate(Status.COMPLETED, "c.json", "A", NOW - 1 * DAY),
        Candidate(Status.CANCELLED, "d.json", "A", NOW - 900 * DAY),
        Candidate(Status.FAILED, "e.json", "A", NOW - 31 * DAY),
    ]
    assert [x.name for x in select(c, POLICY, NOW)] == ["a.json", "b.json", "e.json"]
    assert [x.name for x in select(c, POLICY, NOW, job="A")] == ["a.json", "e.json"]


# ---------------------------------------------------------------- the config


def test_retention_defaults_bound_a_busy_spool(env: SpoolEnv) -> None:
    policy = load_config(env.config, use_env=False).settings.retention.policy()
    assert policy == {Status.COMPLETED: 7 * DAY, Status.FAILED: 30 * DAY, Status.CANCELLED: 7 * DAY}


def test_a_bad_retention_is_one_line_naming_its_key(env: SpoolEnv) -> None:
    env.write_config(retention={"completed": "7 days"})
    with pytest.raises(ConfigError) as err:
        load_config(env.config, use_env=False)
    assert "retention.completed" in str(err.value) and "\n" not in str(err.value)
    env.write_config(retention={"complete": "7d"})
    with pytest.raises(ConfigError, match="did you mean completed"):
        load_config(env.config, use_env=False)


def test_runner_refuses_a_bad_retention_in_one_line(env: SpoolEnv) -> None:
    env.write_config(retention={"failed": "forever"})
    done = env.burst()
    assert done.returncode == 2
    assert "retention.failed" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- runners enforcing it


def open_spool(env: SpoolEnv) -> Spool:
    return Spool(env.spool, durable=False)


def test_runner_removes_old_finished_jobs_with_their_side_files(env: SpoolEnv) -> None:
    env.write_config(
        retention={"completed": "1d", "failed": "keep", "cancelled": "2h", "check_seconds": 0.2}
    )
    spool = open_spool(env)
    now = time.time()
    old_done = [make_finished(spool, Status.COMPLETED, now - 2 * DAY) for _ in range(5)]
    young_done = make_finished(spool, Status.COMPLETED, now - 3600)
    old_failed = make_finished(spool, Status.FAILED, now - 400 * DAY)
    old_cancelled = make_finished(spool, Status.CANCELLED, now - 3 * 3600)
    young_cancelled = make_finished(spool, Status.CANCELLED, now - 3600)
    env.start_runner()
    gone = [*old_done, old_cancelled]
    wait_until(lambda: all(not where(spool, j) for j in gone), 20, "old jobs to be purged")
    for job_id in gone:
        assert side_files(spool, job_id) == {"log": False, "progress": False, "cancel": False}
    for job_id, status in (
        (young_done, "completed"),
        (old_failed, "failed"),
        (young_cancelled, "cancelled"),
    ):
        assert where(spool, job_id) == [status]
        assert side_files(spool, job_id)["log"]
    summary = summary_of(spool)
    assert summary.removed == {"completed": 5, "cancelled": 1}
    assert summary.totals == {"completed": 5, "cancelled": 1}
    assert not (env.spool / "purge").exists() or not [
        n for n in os.listdir(env.spool / "purge") if not n.startswith(".")
    ]


def test_a_job_that_grows_old_while_the_runner_runs_is_removed_then(env: SpoolEnv) -> None:
    env.write_config(retention={"completed": "3s", "check_seconds": 0.2})
    spool = open_spool(env)
    env.start_runner()
    job_id = env.runjob("SampleJob", "process", "a").stdout.strip()
    env.wait_status(job_id, "completed")
    assert side_files(spool, job_id)["log"]
    wait_until(lambda: not where(spool, job_id), 20, "the completed job to age out")
    assert not side_files(spool, job_id)["log"]


def test_keep_everywhere_keeps_everything(env: SpoolEnv) -> None:
    env.write_config(
        retention={"completed": "keep", "failed": "keep", "cancelled": "keep", "check_seconds": 0.1}
    )
    spool = open_spool(env)
    kept = [
        make_finished(spool, s, 0.0) for s in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    ]
    runner = env.start_runner()
    # The runner makes several passes meanwhile (check_seconds 0.1): the marker
    # job's completion bounds the wait, not a sleep.
    marker = env.runjob("SampleJob", "process", "m").stdout.strip()
    env.wait_status(marker, "completed")
    runner.stop()
    assert [where(spool, j) for j in kept] == [["completed"], ["failed"], ["cancelled"]]
    assert all(side_files(spool, j)["log"] for j in kept)
    assert purgesummary.read(spool) is None


def test_archive_dir_keeps_records_and_logs_in_status_folders(env: SpoolEnv) -> None:
    env.write_config(
        retention={
            "completed": "1d",
            "failed": "1d",
            "archive_dir": "archive",
            "check_seconds": 0.2,
        }
    )
    spool = open_spool(env)
    now = time.time()
    done = make_finished(spool, Status.COMPLETED, now - 2 * DAY)
    failed = make_finished(spool, Status.FAILED, now - 2 * DAY)
    record = (env.spool / "completed" / f"{done}.json").read_bytes()
    env.start_runner()
    wait_until(lambda: not where(spool, done) and not where(spool, failed), 20, "archiving")
    archive = env.root / "archive"
    assert (archive / "completed" / f"{done}.json").read_bytes() == record
    assert (archive / "completed" / f"{done}.log").read_text() == f"log of {done}\n"
    assert json.loads((archive / "failed" / f"{failed}.json").read_bytes())["id"] == failed
    assert (archive / "failed" / f"{failed}.log").exists()
    assert side_files(spool, done) == {"log": False, "progress": False, "cancel": False}
    summary = summary_of(spool)
    assert summary.archived


def test_a_large_spool_is_purged_while_jobs_run_and_nothing_young_goes(env: SpoolEnv) -> None:
    env.write_config(
        retention={"completed": "1d", "failed": "1d", "check_seconds": 0.2, "batch": 200}, workers=4
    )
    spool = open_spool(env)
    now = time.time()
    old = [
        make_finished(
            spool,
            Status.COMPLETED if i % 4 else Status.FAILED,
            now - 2 * DAY,
            side_files=i % 10 == 0,
        )
        for i in range(3000)
    ]
    young = [make_finished(spool, Status.COMPLETED, now - 600) for _ in range(100)]
    env.start_runner()
    fresh = [env.runjob("SampleJob", "process", f"n{i}").stdout.strip() for i in range(40)]
    wait_until(
        lambda: spool.count(Status.COMPLETED) + spool.count(Status.FAILED) == 140,
        120,
        "the old jobs to be purged and the new ones to finish",
    )
    for job_id in fresh:
        assert env.status_of(job_id) == "completed"
        assert side_files(spool, job_id)["log"]
    assert all(where(spool, j) == ["completed"] for j in young)
    assert not any(where(spool, j) for j in old)
    assert not any(os.path.lexists(spool.job_log_file(j)) for j in old)
    summary = summary_of(spool)
    assert sum(summary.totals.values()) == 3000


def test_purged_records_leave_no_trace_in_the_listing(env: SpoolEnv) -> None:
    """A purged job is not found any more (what the CLI and the dashboard ask)."""
    env.write_config(retention={"completed": "1d", "check_seconds": 0.2})
    spool = open_spool(env)
    job_id = make_finished(spool, Status.COMPLETED, time.time() - 2 * DAY)
    assert spool.find(job_id) is not None
    env.start_runner()
    wait_until(lambda: spool.find(job_id) is None, 20, "the job to be purged")
    shown = env.cli("show", job_id)
    assert shown.returncode != 0 and "Traceback" not in shown.stderr
    assert Path(spool.job_log_file(job_id)).exists() is False
