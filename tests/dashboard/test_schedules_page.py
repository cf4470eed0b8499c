"""The Schedules page in headless Chromium (list, then "run now" through a real
runner), its JSON API with CSRF, and the schedule figures on /metrics."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from jobspool.recurring import stamp
from jobspool.ticks import Ticks, tick_record
from tests.conftest import SpoolEnv
from tests.dashboard.support import client_for, live_server, make_dashboard, spool_of, status_of
from tests.support.schedtimes import far_daily, recent_daily

SLOW = 25_000  # ms

NIGHTLY: dict[str, Any] = {
    "job": "Typed",
    "method": "add",
    "params": [20, 22],
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
}


def test_schedules_page_lists_and_runs_now(env: SpoolEnv, page: Page) -> None:
    tick, timing = recent_daily()
    daily: dict[str, Any] = {"job": "Typed", "method": "add", "params": [1], **timing}
    at, cron = far_daily()
    env.write_config(schedules={"nightly-report": {**NIGHTLY, "cron": cron}, "daily": daily})
    ticks = Ticks(spool_of(env))
    record = tick_record("daily", tick, generation=0, runner="r", host="h")
    assert ticks.claim(record)
    ticks.mark_done("daily", tick, record.job_id, "queued")
    runner = env.start_runner()
    with live_server(env) as server:
        page.goto(server.url)
        page.click("nav >> text=Schedules")
        expect(page).to_have_url(re.compile(r"/schedules$"))
        rows = page.locator(".schedule-row")
        expect(rows).to_have_count(2)
        nightly = page.locator("#schedule-nightly-report")
        expect(nightly).to_contain_text("Typed.add")
        expect(nightly).to_contain_text(f"cron {cron} (Europe/Berlin)")
        expect(nightly.locator(".last")).to_contain_text("never")
        expect(nightly.locator(".next")).to_contain_text(at.isoformat())
        daily_row = page.locator("#schedule-daily")
        expect(daily_row.locator(".last")).to_contain_text(tick.isoformat())
        expect(daily_row.locator(".last-job")).to_contain_text(f"sched-daily-{stamp(tick)} gone")
        nightly.locator("button.run-now").click()
        expect(page).to_have_url(re.compile(r"/jobs/run-nightly-report-[0-9a-f-]+\?done=submitted"))
        job_id = page.url.split("/jobs/")[1].split("?")[0]
        expect(page.locator("main")).to_contain_text("completed", timeout=SLOW)
    runner.stop()
    assert status_of(spool_of(env), job_id) == "completed"
    assert env.record("completed", job_id)["result"] == 42


def test_schedules_api_run_now_needs_csrf_and_a_known_name(env: SpoolEnv) -> None:
    env.write_config(schedules={"nightly-report": NIGHTLY})
    client = client_for(make_dashboard(env))
    listed = client.get("/api/schedules").json()["schedules"]
    assert [s["name"] for s in listed] == ["nightly-report"]
    assert listed[0]["next_run_utc"].endswith("+00:00")
    refused = client.post("/api/schedules/nightly-report/run", json_body={})
    assert refused.status == 403
    assert env.files("pending") == []
    assert client.api_post("/api/schedules/nightly-repor/run").status == 404
    made = client.api_post("/api/schedules/nightly-report/run")
    assert made.status == 201
    job_id = made.json()["id"]
    assert env.files("pending") == [f"{job_id}.json"]
    text = client.get("/metrics").text
    assert 'jobspool_schedule_next_run_timestamp{schedule="nightly-report"}' in text
    assert "jobspool_schedule_last_run_timestamp{" not in text  # no tick claimed yet
