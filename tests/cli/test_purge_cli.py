"""``jobspool purge``: each option, --dry-run, and user mistakes in one line."""

from __future__ import annotations

import os
import time

import pytest

from jobspool import purgesummary
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv
from tests.support.finished import make_finished, side_files, where

DAY = 86400.0


@pytest.fixture
def jobs(env: SpoolEnv) -> dict[str, str]:
    """Finished jobs of every status and age, two job names."""
    env.write_config(retention={"completed": "7d", "failed": "30d", "cancelled": "keep"})
    spool = Spool(env.spool, durable=False)
    now = time.time()
    return {
        "done_old": make_finished(spool, Status.COMPLETED, now - 10 * DAY),
        "done_3d": make_finished(spool, Status.COMPLETED, now - 3 * DAY),
        "done_new": make_finished(spool, Status.COMPLETED, now - 60),
        "export_old": make_finished(spool, Status.COMPLETED, now - 10 * DAY, job="ExportJob"),
        "failed_40d": make_finished(spool, Status.FAILED, now - 40 * DAY),
        "failed_10d": make_finished(spool, Status.FAILED, now - 10 * DAY),
        "cancelled_old": make_finished(spool, Status.CANCELLED, now - 400 * DAY),
    }


def left(env: SpoolEnv, jobs: dict[str, str]) -> set[str]:
    spool = Spool(env.spool, durable=False)
    return {name for name, job_id in jobs.items() if where(spool, job_id)}


def lines(out: str) -> dict[str, str]:
    return {ln.split()[0]: ln for ln in out.splitlines() if ln.split()}


def test_purge_applies_the_configured_retention_and_prints_counts(
    env: SpoolEnv, jobs: dict[str, str]
) -> None:
    done = env.cli("purge")
    assert done.returncode == 0, done.stderr
    shown = lines(done.stdout)
    assert "removed       2" in shown["completed"] and "older than 1w" in shown["completed"]
    assert "removed       1" in shown["failed"]
    assert "removed       0" in shown["cancelled"] and "kept" in shown["cancelled"]
    assert "removed 3 jobs" in done.stdout
    assert left(env, jobs) == {"done_3d", "done_new", "failed_10d", "cancelled_old"}
    spool = Spool(env.spool, durable=False)
    for name in ("done_old", "export_old", "failed_40d"):
        assert side_files(spool, jobs[name]) == {"log": False, "progress": False, "cancel": False}
    summary = purgesummary.read(spool)
    assert summary is not None and summary.removed == {"completed": 2, "failed": 1}
    assert summary.by.startswith("jobspool purge")


def test_dry_run_counts_and_removes_nothing(env: SpoolEnv, jobs: dict[str, str]) -> None:
    done = env.cli("purge", "--dry-run", "--older-than", "0s")
    assert done.returncode == 0, done.stderr
    shown = lines(done.stdout)
    assert "would remove       4" in shown["completed"]
    assert "would remove       2" in shown["failed"]
    assert "would remove       1" in shown["cancelled"]
    assert "would remove 7 jobs (dry run)" in done.stdout
    assert left(env, jobs) == set(jobs)
    spool = Spool(env.spool, durable=False)
    assert all(side_files(spool, j)["log"] for j in jobs.values())
    assert purgesummary.read(spool) is None


def test_older_than_and_status_choose_what_goes(env: SpoolEnv, jobs: dict[str, str]) -> None:
    done = env.cli("purge", "--older-than", "2d", "--status", "completed")
    assert done.returncode == 0, done.stderr
    assert left(env, jobs) == {"done_new", "failed_40d", "failed_10d", "cancelled_old"}
    done = env.cli("purge", "--older-than", "5d", "--status", "failed", "--status", "cancelled")
    assert done.returncode == 0, done.stderr
    assert left(env, jobs) == {"done_new"}


def test_job_keeps_other_names(env: SpoolEnv, jobs: dict[str, str]) -> None:
    done = env.cli("purge", "--older-than", "0s", "--job", "ExportJob")
    assert done.returncode == 0, done.stderr
    assert "removed 1 job" in done.stdout
    assert left(env, jobs) == set(jobs) - {"export_old"}


def test_archive_dir_from_the_config(env: SpoolEnv, jobs: dict[str, str]) -> None:
    env.write_config(retention={"completed": "7d", "archive_dir": "kept"})
    done = env.cli("purge", "--status", "completed")
    assert done.returncode == 0, done.stderr
    assert "archived 2 jobs to" in done.stdout
    for name in ("done_old", "export_old"):
        assert (env.root / "kept" / "completed" / f"{jobs[name]}.json").is_file()
        assert (env.root / "kept" / "completed" / f"{jobs[name]}.log").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "ten days"], "--older-than: 'ten days' is not an age"),
        (["--older-than=-1d"], "--older-than: '-1d' is not an age"),
        (["--job", "os.system"], "--job: 'os.system' is not a job name"),
        (["--status", "pending"], "invalid choice: 'pending'"),
    ],
)
def test_a_mistake_is_one_line_and_nothing_goes(
    env: SpoolEnv, jobs: dict[str, str], args: list[str], message: str
) -> None:
    done = env.cli("purge", *args)
    assert done.returncode == 2
    errors = [ln for ln in done.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and message in errors[0], done.stderr  # argparse adds its usage
    assert "Traceback" not in done.stderr
    assert left(env, jobs) == set(jobs)


def test_age_is_the_record_files_and_a_rewritten_record_is_young(
    env: SpoolEnv, jobs: dict[str, str]
) -> None:
    """Retention counts from the record file's modification time (docs/RETENTION.md)."""
    spool = Spool(env.spool, durable=False)
    young = spool.path_in(Status.COMPLETED, f"{jobs['done_old']}.json")
    os.utime(young, None)  # as when a finish wrote it just now
    done = env.cli("purge", "--older-than", "1d", "--status", "completed")
    assert done.returncode == 0, done.stderr
    assert left(env, jobs) >= {"done_old"} and "export_old" not in left(env, jobs)


def test_a_spool_it_may_not_change_is_one_line(env: SpoolEnv, jobs: dict[str, str]) -> None:
    completed = env.spool / "completed"
    completed.chmod(0o555)
    try:
        if os.access(completed, os.W_OK):  # root ignores modes: make the rename fail otherwise
            (env.spool / "purge").mkdir(exist_ok=True)
            (env.spool / "purge").chmod(0o555)
            os.rename(env.spool / "purge", env.spool / "purge-ro")
            (env.spool / "purge").write_text("not a directory")
        done = env.cli("purge", "--older-than", "0s", "--status", "completed")
    finally:
        completed.chmod(0o755)
    assert done.returncode == 2
    assert "cannot purge" in done.stderr or "not a directory" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert left(env, jobs) == set(jobs)
