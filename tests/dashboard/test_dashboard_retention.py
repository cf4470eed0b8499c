"""The dashboard shows the retention in force and what the last purge removed
(overview, JSON API, /metrics), reads the purge summary as untrusted input,
and its index copes with job files purged under it."""

from __future__ import annotations

import os
import time

from playwright.sync_api import Page, expect

from jobspool import purgesummary
from jobspool.dashboard.index import JobIndex
from jobspool.purge import Purger, Staged
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv
from tests.dashboard.support import LiveServer, client_for, make_dashboard
from tests.support.faults import HookedOps
from tests.support.finished import make_finished

DAY = 86400.0


def old_jobs(env: SpoolEnv, n: int, status: Status = Status.COMPLETED) -> list[str]:
    spool = Spool(env.spool, durable=False)
    return [make_finished(spool, status, time.time() - 40 * DAY) for _ in range(n)]


def purge_now(env: SpoolEnv) -> None:
    done = env.cli("purge")
    assert done.returncode == 0, done.stderr


def test_overview_api_and_metrics_show_the_retention_and_the_last_purge(env: SpoolEnv) -> None:
    env.write_config(retention={"completed": "7d", "failed": "30d", "cancelled": "keep"})
    old_jobs(env, 3)
    old_jobs(env, 2, Status.FAILED)
    purge_now(env)
    client = client_for(make_dashboard(env))
    page = client.get("/").text
    assert 'id="retention"' in page
    assert "forever" in page and ">1w<" in page
    assert "Last purge:" in page and "jobspool purge" in page
    data = client.get("/api/overview").json()["retention"]
    assert data["policy"] == {"completed": "1w", "failed": "30d", "cancelled": "keep"}
    assert data["last_purge"]["removed"] == {"completed": 3, "failed": 2, "cancelled": 0}
    assert data["purged_total"] == {"completed": 3, "failed": 2, "cancelled": 0}
    metrics = client.get("/metrics").text
    assert 'jobspool_purged_total{status="completed"} 3' in metrics
    assert 'jobspool_purged_total{status="failed"} 2' in metrics
    assert 'jobspool_retention_seconds{status="completed"} 604800' in metrics
    assert 'jobspool_retention_seconds{status="cancelled"}' not in metrics
    assert "jobspool_last_purge_timestamp_seconds " in metrics
    old_jobs(env, 1)
    purge_now(env)
    again = client.get("/api/overview").json()["retention"]
    assert again["last_purge"]["removed"]["completed"] == 1
    assert again["purged_total"]["completed"] == 4


def test_a_summary_that_cannot_be_trusted_reads_as_none(env: SpoolEnv) -> None:
    spool = Spool(env.spool, durable=False)
    path = purgesummary.path(spool)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    client = client_for(make_dashboard(env))
    hostile = [
        b"\x00\xff not json",
        b'{"at": "2026-01-01T00:00:00Z", "by": "x", "removed": {"completed": -5}}',
        b'{"at": "2026-01-01T00:00:00Z", "by": "x", "removed": {"pending": 1}}',
        b'{"at": "2026-01-01T00:00:00Z", "by": "x", "extra": 1}',
        b'{"at": "2026-01-01T00:00:00Z", "by": "' + b"x" * 20000 + b'"}',
    ]
    for data in hostile:
        with open(path, "wb") as f:
            f.write(data)
        assert purgesummary.read(spool) is None, data[:60]
        page = client.get("/")
        assert page.status == 200
        assert "No purge has removed anything yet." in page.text
        assert 'jobspool_purged_total{status="completed"} 0' in client.get("/metrics").text
    os.unlink(path)
    os.symlink("/etc/hostname", path)
    assert purgesummary.read(spool) is None
    os.unlink(path)
    script = b'{"at": "2026-01-01T00:00:00Z", "by": "<script>alert(1)</script>"}'
    with open(path, "wb") as f:
        f.write(script)
    shown = client.get("/").text
    assert "<script>alert(1)</script>" not in shown and "&lt;script&gt;" in shown


class PurgeOnRead(HookedOps):
    """Purges a job the moment the index opens its file: listed, then gone."""

    def __init__(self, spool: Spool, job_id: str) -> None:
        super().__init__()
        self.spool = spool
        self.job_id = job_id
        self.fired = False

    def before(self, op: str, *paths: str) -> None:
        if op == "read_regular" and paths[0].endswith(f"{self.job_id}.json") and not self.fired:
            self.fired = True
            purger = Purger(self.spool)
            staged = purger.stage(Status.COMPLETED, f"{self.job_id}.json")
            assert staged == Staged(Status.COMPLETED, self.job_id)
            purger.settle([staged])


def test_the_index_forgets_jobs_purged_between_listing_and_reading(env: SpoolEnv) -> None:
    plain = Spool(env.spool, durable=False)
    keep = old_jobs(env, 2)
    gone = old_jobs(env, 1)[0]
    hooked = PurgeOnRead(plain, gone)
    index = JobIndex(Spool(env.spool, durable=False, ops=hooked, create=False))
    assert index.refresh() is True
    assert hooked.fired
    assert index.row(Status.COMPLETED, f"{gone}.json") is None  # no placeholder row
    index.refresh(force=True)
    assert index.counts()["completed"] == 2
    assert sorted(index.ordered(Status.COMPLETED)) == sorted(f"{j}.json" for j in keep)
    with index.lock:
        assert index.aggregates.per_name()[0].completed == 2


def test_pages_of_purged_jobs_are_gone_and_counts_follow(env: SpoolEnv) -> None:
    env.write_config(retention={"completed": "7d"})
    ids = old_jobs(env, 5)
    client = client_for(make_dashboard(env))
    assert client.get("/api/overview").json()["counts"]["completed"] == 5
    assert client.get(f"/jobs/{ids[0]}").status == 200
    purge_now(env)
    assert client.get(f"/jobs/{ids[0]}").status == 404
    assert client.get(f"/api/jobs/{ids[0]}").status == 404
    assert client.get("/api/overview").json()["counts"]["completed"] == 0
    listed = client.get("/api/jobs?status=completed").json()
    assert listed["jobs"] == []


def test_the_overview_shows_retention_in_a_browser(
    env: SpoolEnv, server: LiveServer, page: Page
) -> None:
    env.write_config(retention={"completed": "3d", "failed": "keep", "cancelled": "12h"})
    old_jobs(env, 2, Status.CANCELLED)
    purge_now(env)
    page.goto(server.url)
    section = page.locator("#retention")
    expect(section).to_be_visible()
    expect(page.locator("#retention-completed")).to_contain_text("3d")
    expect(page.locator("#retention-failed")).to_contain_text("forever")
    expect(page.locator("#retention-cancelled")).to_contain_text("12h")
    expect(page.locator("#retention-cancelled td.num").first).to_have_text("2")
    expect(page.locator("#last-purge")).to_contain_text("jobspool purge")
