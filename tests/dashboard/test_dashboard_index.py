"""The dashboard's incremental index and statistics, on real spool files."""

from __future__ import annotations

import json
import os
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from jobspool import actions
from jobspool.dashboard.index import JobIndex, quick_row, row_of
from jobspool.dashboard.listing import DirWatch
from jobspool.dashboard.queries import JobFinder, JobQuery
from jobspool.dashboard.stats import (
    HIST_BUCKETS,
    Aggregates,
    Histogram,
    Row,
    bucket_of,
    bucket_upper,
)
from jobspool.model import ErrorInfo
from jobspool.names import RunningName
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv
from tests.dashboard.support import finished_job, spool_of


def test_each_file_is_read_once_and_rows_are_kept(env: SpoolEnv) -> None:
    spool = spool_of(env)
    ids = [finished_job(spool, Status.COMPLETED, params=[i]) for i in range(4)]
    index = JobIndex(spool)
    assert index.refresh() is True
    assert index.counts()["completed"] == 4
    rows = {name: index.row(Status.COMPLETED, name) for name in index.ordered(Status.COMPLETED)}
    generation = index.generation
    index.refresh(force=True)
    assert index.generation == generation, "an unchanged spool must not change the index"
    for name, row in rows.items():
        assert index.row(Status.COMPLETED, name) is row
    assert [n[:-5] for n in index.ordered(Status.COMPLETED)] == sorted(ids)


def test_listing_happens_before_reading(env: SpoolEnv) -> None:
    spool = spool_of(env)
    for i in range(5):
        finished_job(spool, Status.FAILED, params=[i])
    index = JobIndex(spool)
    assert index.refresh(read_budget=0.0) is False
    assert index.count(Status.FAILED) == 5
    assert not index.complete(Status.FAILED)
    assert index.state().to_read == 5
    assert index.refresh() is True
    assert index.complete(Status.FAILED)
    assert index.state().ready


def test_a_replaced_failed_file_is_read_again(env: SpoolEnv) -> None:
    spool = spool_of(env)
    job_id = finished_job(spool, Status.FAILED, error=ErrorInfo(type="FirstError", message="one"))
    index = JobIndex(spool)
    index.refresh()
    name = f"{job_id}.json"
    assert "firsterror" in (index.row(Status.FAILED, name) or _missing()).text
    # Retried and failed again between two refreshes: same name, new file.
    actions.retry(spool, job_id, by="test", via="test")
    running = spool.claim(name, RunningName(job_id, "r", 2))
    assert running is not None
    record = spool.read_job(running).model_copy(
        update={"id": job_id, "error": ErrorInfo(type="SecondError", message="two")}
    )
    spool.move(running, Status.RUNNING, Status.FAILED, record)
    index.refresh(force=True)
    row = index.row(Status.FAILED, name) or _missing()
    assert "seconderror" in row.text
    assert "firsterror" not in row.text
    with index.lock:
        assert index.aggregates.names["SampleJob.process"].failed == 1


def test_rows_leaving_take_their_statistics_along(env: SpoolEnv) -> None:
    spool = spool_of(env)
    failed = [finished_job(spool, Status.FAILED) for _ in range(3)]
    finished_job(spool, Status.COMPLETED, duration=2.0)
    index = JobIndex(spool)
    index.refresh()
    now = time.time()
    with index.lock:
        minutes = index.aggregates.series(60, 60, now)
    assert sum(b.failed for b in minutes) == 3
    assert sum(b.completed for b in minutes) == 1
    actions.retry(spool, failed[0], by="test", via="test")
    index.refresh(force=True)
    with index.lock:
        minutes = index.aggregates.series(60, 60, now)
        per_name = index.aggregates.per_name()
        attempts = dict(index.aggregates.attempts)
    assert sum(b.failed for b in minutes) == 2
    assert per_name[0].failed == 2
    assert per_name[0].completed == 1
    assert attempts["failed"] == 2
    assert attempts["succeeded"] == 1
    assert index.count(Status.PENDING) == 1


def test_the_limit_caps_rows_but_not_counts(env: SpoolEnv) -> None:
    spool = spool_of(env)
    ids = [finished_job(spool, Status.COMPLETED, params=[f"tag{i}"]) for i in range(6)]
    index = JobIndex(spool, limit=3)
    index.refresh()
    assert index.count(Status.COMPLETED) == 6
    kept = [n for n in index.ordered(Status.COMPLETED) if index.indexed(Status.COMPLETED, n)]
    assert [n[:-5] for n in kept] == sorted(ids)[-3:]
    finder = JobFinder(index, spool)
    assert finder.matches(JobQuery(q="tag0")) == []
    assert len(finder.matches(JobQuery(q="tag5"))) == 1


def test_an_unreadable_file_gets_a_placeholder(env: SpoolEnv) -> None:
    spool = spool_of(env)
    (spool.dir(Status.FAILED) / "broken.json").write_text("{not json")
    good = finished_job(spool, Status.FAILED)
    index = JobIndex(spool)
    assert index.refresh()
    row = index.row(Status.FAILED, "broken.json")
    assert row is not None and not row.readable
    finder = JobFinder(index, spool)
    page = finder.find(JobQuery(status=Status.FAILED))
    assert page.total == 2
    assert [v.id for v in page.views] == [good], "a file that is not a job is left off the page"


def test_dir_watch_trusts_a_settled_mtime_only(env: SpoolEnv) -> None:
    spool = spool_of(env)
    finished_job(spool, Status.COMPLETED)
    watch = DirWatch(spool, Status.COMPLETED, track_identity=False, racy_seconds=0.0, cost_factor=0)
    first = watch.poll()
    assert first is not None and len(first) == 1
    assert watch.poll() is None, "unchanged and settled: not listed again"
    finished_job(spool, Status.COMPLETED)
    # Make sure the directory's mtime moves even on coarse-clock filesystems.
    later = time.time() + 5
    os.utime(spool.dir(Status.COMPLETED), (later, later))
    second = watch.poll()
    assert second is not None and len(second) == 2
    racy = DirWatch(
        spool, Status.COMPLETED, track_identity=False, racy_seconds=3600.0, cost_factor=0
    )
    racy.poll()
    assert racy.poll() is not None, "a listing taken in the mtime's tick is not trusted"


def test_running_and_pending_rows_give_the_oldest_pending(env: SpoolEnv) -> None:
    spool = spool_of(env)
    env.drop(
        "first.json",
        json.dumps({"job": "SampleJob", "method": "process", "created_at": "2020-01-01T00:00:00Z"}),
    )
    env.drop("second.json", json.dumps({"job": "SampleJob", "method": "process"}))
    index = JobIndex(spool)
    index.refresh()
    oldest = index.oldest_pending()
    assert oldest is not None and oldest[0] == "first"
    assert time.time() - oldest[1] > 86400 * 365


# ------------------------------------------------------------------ statistics


def _missing() -> Row:
    raise AssertionError("expected a row")


def _row(job: str, finished: float, duration: float, outcomes: str) -> Row:
    return Row(1, job, "run", finished - 1, finished, duration, 0, outcomes, "")


rows = st.lists(
    st.tuples(
        st.sampled_from([Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PENDING]),
        st.sampled_from(["A", "B"]),
        st.floats(min_value=-3 * 86400, max_value=0),
        st.floats(min_value=0, max_value=1e5),
        st.text(alphabet="sfrtcxklh", max_size=4),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(rows, st.randoms())
def test_adding_then_removing_rows_restores_every_figure(
    items: list[tuple[Status, str, float, float, str]], rnd: object
) -> None:
    now = 1_800_000_000.0
    agg = Aggregates()
    made = [(status, _row(job, now + ago, d, codes)) for status, job, ago, d, codes in items]
    for status, row in made:
        agg.add(status, row, +1, now)
    order = list(made)
    rnd.shuffle(order)  # type: ignore[attr-defined]
    for status, row in order:
        agg.add(status, row, -1, now)
    assert agg.minutes == {}
    assert agg.hours == {}
    assert all(v == 0 for v in agg.attempts.values())
    assert all(h.count == 0 for h in agg.durations.values())
    assert agg.per_name() == []


def test_percentiles_are_within_five_percent() -> None:
    hist = Histogram()
    values = [0.0005 * 1.37**k for k in range(40)]
    for v in values:
        hist.add(v, +1)
    ordered = sorted(values)
    for q in (0.5, 0.95):
        exact = ordered[max(0, int(q * len(ordered)) - 1)]
        found = hist.quantile(q)
        assert found is not None
        assert (
            abs(found - exact) / exact < 0.05
            or abs(found - ordered[int(q * len(ordered))]) / exact < 0.05
        )


def test_histogram_edges_and_buckets() -> None:
    assert bucket_of(0.0) == 0
    assert bucket_of(0.0015) >= 1
    assert bucket_of(1e9) == HIST_BUCKETS - 1
    assert bucket_upper(16) == 0.004
    hist = Histogram()
    hist.add(0.003, +1)
    hist.add(2.0, +1)
    edges = dict(hist.cumulative())
    assert edges[0.004] == 1
    assert edges[4.096] == 2


def test_old_rows_are_not_bucketed_and_prune_forgets_old_buckets() -> None:
    now = 1_800_000_000.0
    agg = Aggregates(minute_window=3600, hour_window=7200)
    agg.add(Status.COMPLETED, _row("A", now - 10_000, 1.0, "s"), +1, now)
    assert agg.minutes == {} and agg.hours == {}
    agg.add(Status.COMPLETED, _row("A", now - 3000, 1.0, "s"), +1, now)
    assert sum(c[0] for c in agg.minutes.values()) == 1
    agg.prune(now + 4000)
    assert agg.minutes == {}
    assert sum(c[0] for c in agg.hours.values()) == 1
    assert agg.per_name()[0].completed == 2


def test_spool_fixture_is_private(env: SpoolEnv) -> None:
    assert isinstance(spool_of(env), Spool)
    assert spool_of(env).root == env.spool.resolve()


def test_a_finished_record_read_straight_from_its_file_gives_the_same_row(
    env: SpoolEnv,
) -> None:
    """The first index reads finished records without the record model
    (quick_row); each row must equal the one the model's reading gives, and
    what the quick reading cannot judge goes to the model."""
    spool = spool_of(env)
    made = [
        (Status.COMPLETED, finished_job(spool, Status.COMPLETED, params={"a": [1, "é"]}, result=3)),
        (
            Status.FAILED,
            finished_job(
                spool,
                Status.FAILED,
                error=ErrorInfo(type="ValueError", message="Bad Input " * 40),
                duration=1.5,
            ),
        ),
        (Status.CANCELLED, finished_job(spool, Status.CANCELLED, params=[])),
    ]
    now = time.time()
    for status, job_id in made:
        view = spool.view(status, f"{job_id}.json")
        assert view is not None
        quick = quick_row(spool, status, f"{job_id}.json", 7, now)
        assert quick is not None and quick == row_of(view, 7, now), status
        assert quick.outcomes and quick.job == "SampleJob"

    completed = env.spool / "completed"
    (completed / "broken.json").write_text('{"job": "SampleJob", "method": 5}')
    (completed / "cut.json").write_text('{"job": "SampleJob"')
    os.symlink(completed / f"{made[0][1]}.json", completed / "link.json")
    for name in ("broken.json", "cut.json", "link.json"):
        assert quick_row(spool, Status.COMPLETED, name, 1, now) is None, name
    index = JobIndex(spool)
    index.refresh()
    for name in ("broken.json", "cut.json", "link.json"):
        row = index.row(Status.COMPLETED, name)
        assert row is not None and not row.readable, name  # a placeholder, as before
