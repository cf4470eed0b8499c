"""A backlog read by a quick look (jobspool.backlog) keeps every rule of a full load.

A runner that finds more than ``QUICK_FROM`` new files orders them from a
quick look and loads each in full only when it comes up for a claim. These
tests build real backlogs and take from a real intake, then run a real
runner on one: the order must be the order of full loads, and what a full
load refuses, leaves or rewrites must be refused, left or rewritten still.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

from jobspool import backlog
from jobspool.model import Attempt, Job, Outcome
from jobspool.names import JSON
from jobspool.spool import Spool
from jobspool.stages.intake import QUICK_FROM, Intake
from tests.conftest import SpoolEnv, wait_until

START = datetime(2026, 1, 1, tzinfo=UTC)


def _backlog(spool: Spool, n: int) -> list[Job]:
    """n jobs of mixed priorities and ages, submitted out of order."""
    jobs = [
        Job(
            job="Typed",
            method="add",
            params=[i],
            id=f"job-{i:05d}",
            priority=(i * 7) % 3,
            created_at=START + timedelta(seconds=(i * 37) % n),
        )
        for i in range(n)
    ]
    spool.submit_many(jobs)
    return jobs


def _drain(intake: Intake) -> list[str]:
    taken = []
    while (entry := intake.take(time.time(), lambda _e: True)) is not None:
        taken.append(entry.job_id)
    return taken


def _expected(jobs: list[Job]) -> list[str]:
    return [j.id or "" for j in sorted(jobs, key=lambda j: (-j.priority, j.created_at, j.id))]


def test_a_backlog_is_taken_in_the_order_of_full_loads(env: SpoolEnv) -> None:
    spool = Spool.open(env.spool)
    jobs = _backlog(spool, QUICK_FROM + 300)
    intake = Intake(spool)
    intake.rescan()
    assert intake.schedule.unverified() == len(jobs)  # the quick path ran
    assert _drain(intake) == _expected(jobs)


def test_an_unsealed_files_bookkeeping_is_not_believed_by_the_quick_look(env: SpoolEnv) -> None:
    spool = Spool.open(env.spool)
    jobs = _backlog(spool, QUICK_FROM)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    forged = {
        "job": "Typed",
        "method": "add",
        "params": [1],
        "id": "forged",
        "priority": 0,
        "created_at": START.isoformat(),
        "next_attempt_at": later,  # a producer cannot delay itself this way...
        "attempts": [
            Attempt(number=1, runner="r", host="h", outcome=Outcome.FAILED).model_dump(mode="json")
        ],
    }
    (env.spool / "pending" / f"forged{JSON}").write_text(json.dumps(forged))
    delayed = {**forged, "id": "delayed", "not_before": later}  # ...only with not_before
    del delayed["next_attempt_at"]
    (env.spool / "pending" / f"delayed{JSON}").write_text(json.dumps(delayed))
    intake = Intake(spool)
    intake.rescan()
    order = _drain(intake)
    assert "delayed" not in order
    assert order.index("forged") == _expected(
        [*jobs, Job(job="Typed", method="add", id="forged", created_at=START)]
    ).index("forged")


def test_what_a_full_load_refuses_or_leaves_is_still_refused_or_left(env: SpoolEnv) -> None:
    spool = Spool.open(env.spool)
    _backlog(spool, QUICK_FROM)
    pending = env.spool / "pending"
    (pending / f"broken{JSON}").write_text('{"job": "Typed", "method": "add", "params": [1]')
    old = time.time() - 60
    os.utime(pending / f"broken{JSON}", (old, old))
    # A leftover: the same job finished elsewhere, at a later revision.
    stale = Job(job="Typed", method="add", params=[2], id="stale", created_at=START)
    spool.submit(stale)
    done = spool.read_job(pending / f"stale{JSON}").model_copy(update={"revision": 5})
    (env.spool / "completed" / f"stale{JSON}").write_bytes(spool.seal(done).data)
    intake = Intake(spool)
    intake.rescan()
    order = _drain(intake)
    assert "stale" not in order and "broken" not in order
    assert len(order) == QUICK_FROM
    assert any(n.startswith("broken") for n in os.listdir(env.spool / "corrupt"))
    assert (pending / f"stale{JSON}").exists()  # left for the sweep, never run


def test_a_runner_on_a_backlog_runs_the_highest_priority_first(
    env: SpoolEnv, tmp_path: object
) -> None:
    spool = Spool.open(env.spool)
    _backlog(spool, QUICK_FROM + 100)
    first = Job(job="Typed", method="add", params=[100, 1], id="urgent", priority=9)
    spool.submit(first)  # submitted last, due first
    env.write_config(workers=1)
    runner = env.start_runner()
    wait_until(lambda: env.status_of("urgent") == "completed", 60, "the urgent job to run")
    runner.stop()
    started = {
        n: json.loads((env.spool / "completed" / n).read_text())["attempts"][0]["started_at"]
        for n in os.listdir(env.spool / "completed")
        if n.endswith(JSON)
    }
    assert min(started, key=started.__getitem__) == f"urgent{JSON}"


def test_what_the_quick_look_cannot_judge_is_left_to_the_full_load(env: SpoolEnv) -> None:
    spool = Spool.open(env.spool)
    _backlog(spool, 20)
    pending = env.spool / "pending"
    (pending / f"broken{JSON}").write_text('{"job": ')
    (pending / "not an id.json").write_text("{}")
    (pending / f"huge{JSON}").write_bytes(b" " * (spool.max_job_bytes + 1))
    os.symlink(pending / "job-00001.json", pending / f"link{JSON}")
    names = sorted(os.listdir(pending))
    found = backlog.scan_all(str(pending), names, spool.seal_key(), spool.max_job_bytes)
    left = sorted(f for f in found if isinstance(f, str))
    assert left == sorted([f"broken{JSON}", "not an id.json", f"huge{JSON}", f"link{JSON}"])
