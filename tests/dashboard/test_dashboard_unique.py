"""Unique jobs in the dashboard: the JSON API and the submit form (a real
Chromium) say when a key is held and write nothing; the job page shows the
key; /metrics counts the locks."""

from __future__ import annotations

import os
import re

from playwright.sync_api import Page, expect

from jobspool import unique
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv
from tests.dashboard.support import Client, LiveServer

GREET = {"job": "Typed", "method": "greet", "params": {"name": "ann"}}


def test_the_api_returns_the_holder_and_writes_nothing(
    env: SpoolEnv, client: Client, spool: Spool
) -> None:
    first = client.api_post("/api/jobs", {**GREET, "unique": {"key": "greet-{name}"}})
    assert first.status == 201 and first.json()["existing"] is False
    job_id = first.json()["id"]
    assert spool.get(job_id).record.unique is not None
    pending = sorted(spool.names(Status.PENDING))
    again = client.api_post("/api/jobs", {**GREET, "unique": "greet-{name}"})
    assert again.status == 200
    body = again.json()
    assert body["id"] == job_id and body["existing"] is True and body["status"] == "pending"
    assert "unique key" in body["message"]
    assert sorted(spool.names(Status.PENDING)) == pending
    bad = client.api_post("/api/jobs", {**GREET, "unique": {"key": "{name.__class__}"}})
    assert bad.status == 400 and set(bad.json()["fields"]) == {"unique"}
    assert bad.json()["fields"]["unique"].startswith("unique.key: ")
    assert sorted(spool.names(Status.PENDING)) == pending
    metrics = client.get("/metrics").text
    assert "\njobspool_unique_locks 1\n" in metrics
    page = client.get(f"/jobs/{job_id}").text
    assert "Unique key <code>greet-ann</code> (until finished" in page
    assert "holds the lock" in page
    os.unlink(env.spool / unique.DIR / unique.lock_name("greet-ann"))
    assert "does not hold the lock" in client.get(f"/jobs/{job_id}").text
    assert "\njobspool_unique_locks 0\n" in client.get("/metrics").text


def test_the_form_says_the_key_is_held(
    env: SpoolEnv, server: LiveServer, page: Page, spool: Spool
) -> None:
    def fill() -> None:
        page.goto(server.url + "submit")
        page.select_option("#job", "Typed")
        page.select_option("#method", "greet")
        page.fill("#params", '{"name": "bo"}')
        page.fill("#unique_key", "greet-{name}")
        page.select_option("#unique_until", "queued")
        page.fill("#unique_for", "10m")
        page.click("#submit")

    fill()
    expect(page).to_have_url(re.compile(r"/jobs/[\w-]+\?done=submitted$"))
    job_id = page.locator("#job-id").text_content() or ""
    assert (unique_of := spool.get(job_id).record.unique) is not None
    assert (unique_of.key, unique_of.until, unique_of.for_seconds) == ("greet-bo", "queued", 600)
    expect(page.locator("#unique-key")).to_contain_text("greet-bo")
    expect(page.locator("#unique-key")).to_contain_text("holds the lock")
    fill()
    expect(page).to_have_url(re.compile(rf"/jobs/{job_id}\?done=unique-held$"))
    expect(page.locator("#job-flash")).to_have_text(
        "Not submitted: this job holds the same unique key."
    )
    assert spool.names(Status.PENDING) == [f"{job_id}.json"]
    page.goto(server.url + "submit")
    page.select_option("#job", "Typed")
    page.select_option("#method", "greet")
    page.fill("#params", '{"name": "bo"}')
    page.fill("#unique_key", "{0.__class__}")
    page.click("#submit")
    expect(page.locator("#error-unique")).to_contain_text("unique.key: ")
    assert spool.names(Status.PENDING) == [f"{job_id}.json"]
