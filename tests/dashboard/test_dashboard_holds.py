"""Pause, resume and the spool-wide limits on the dashboard: routes in process, and the
buttons in a real browser with a real runner."""

from __future__ import annotations

import os

from playwright.sync_api import Page, expect

from jobspool.model import Job
from jobspool.spool import Spool
from tests.conftest import TEST_JOBS, SpoolEnv, wait_until
from tests.dashboard.support import (
    Client,
    LiveServer,
    client_for,
    make_dashboard,
    spool_of,
    status_of,
)
from tests.support.spoolkit import log_text

ACTOR = "dashboard@127.0.0.1"
SLOW = 25_000


def _pause_files(env: SpoolEnv) -> list[str]:
    return sorted(n for n in os.listdir(env.spool / "control") if n.startswith("pause~"))


def test_pause_and_resume_forms_write_and_clear_the_pause_files(
    env: SpoolEnv, client: Client
) -> None:
    res = client.form("/holds/pause", {"job": "Marker"})
    assert res.status == 303 and (res.header("Location") or "").endswith("/")
    assert _pause_files(env) == ["pause~Marker.json"]
    page = client.get("/").text
    assert 'id="resume-Marker"' in page and 'id="pause-Typed"' in page
    assert ACTOR in page
    client.form("/holds/pause")
    assert _pause_files(env) == ["pause~Marker.json", "pause~__all__.json"]
    assert 'id="resume-spool"' in client.get("/").text
    client.form("/holds/resume")
    client.form("/holds/resume", {"job": "Marker"})
    assert _pause_files(env) == []


def test_a_form_without_the_csrf_token_is_refused(env: SpoolEnv, client: Client) -> None:
    client.get("/")
    res = client.post("/holds/pause", data={"job": "Marker"})
    assert res.status == 403
    assert _pause_files(env) == []


def test_unknown_names_are_400_with_a_hint_and_write_nothing(env: SpoolEnv, client: Client) -> None:
    res = client.form("/holds/pause", {"job": "Markr"})
    assert res.status == 400 and "did you mean Marker?" in res.text
    res = client.api_post("/api/holds/pause", {"jobs": ["../etc"]})
    assert res.status == 400
    res = client.api_post("/api/holds/pause", {"jobs": "Marker"})
    assert res.status == 400
    assert _pause_files(env) == []


def test_the_api_pauses_resumes_and_reports(env: SpoolEnv, client: Client) -> None:
    res = client.api_post("/api/holds/pause", {"jobs": ["Marker", "Typed"]})
    assert res.status == 200
    body = res.json()
    assert body["pause"] == ["Marker", "Typed"]
    assert sorted(body["paused"]["jobs"]) == ["Marker", "Typed"]
    assert body["paused"]["jobs"]["Marker"]["by"] == ACTOR
    assert body["paused"]["jobs"]["Marker"]["via"] == "dashboard"
    assert client.api_post("/api/holds/pause", {}).json()["paused"]["spool"]["by"] == ACTOR
    got = client.get("/api/holds").json()
    assert got["paused"]["spool"] is not None and "SampleJob" in got["names"]
    res = client.api_post("/api/holds/resume", {"jobs": ["Typed"]})
    assert sorted(res.json()["paused"]["jobs"]) == ["Marker"]
    res = client.api_post("/api/holds/resume", {"jobs": []})
    assert res.json()["paused"]["spool"] is None


def test_metrics_and_overview_show_pauses_slots_and_rates(env: SpoolEnv) -> None:
    limited = {**TEST_JOBS["Marker"], "concurrency": {"per_runner": 1, "global": 3}, "rate": "5/m"}
    env.write_config(allowed_jobs={**TEST_JOBS, "Marker": limited})
    slots = env.spool / "slots" / "Marker"
    slots.mkdir(parents=True)
    (slots / "1").write_text('{"runner": "r1", "job": "j1", "token": "j1~r1~1"}')
    client = client_for(make_dashboard(env))
    client.api_post("/api/holds/pause", {"jobs": ["Typed"]})
    text = client.get("/metrics").text
    assert "jobspool_spool_paused 0" in text
    assert 'jobspool_paused{job="Typed"} 1' in text
    assert 'jobspool_slots_in_use{job="Marker"} 1' in text
    assert 'jobspool_slots_global{job="Marker"} 3' in text
    assert 'jobspool_rate_used{job="Marker"} 0' in text
    assert 'jobspool_rate_limit{job="Marker"} 5' in text
    client.api_post("/api/holds/pause", {})
    assert "jobspool_spool_paused 1" in client.get("/metrics").text
    page = client.get("/").text
    assert "1 / 3" in page and "0 of 5/m" in page
    limits = client.get("/api/holds").json()["limits"]
    assert limits["Marker"] == {"slots_in_use": 1, "global": 3, "rate": "5/m", "rate_used": 0}


def test_pause_and_resume_buttons_hold_and_release_a_job(
    env: SpoolEnv, server: LiveServer, page: Page
) -> None:
    spool: Spool = spool_of(env)
    env.start_runner()
    page.goto(server.url)
    page.click("#pause-Marker")
    expect(page.locator("#resume-Marker")).to_be_visible(timeout=SLOW)
    expect(page.locator("#hold-Marker")).to_contain_text("paused")
    # The runner learns of the pause asynchronously: wait until it has, or it
    # could claim the job below first.
    wait_until(lambda: "paused job_name=Marker" in log_text(env), 10, "the runner to see the pause")
    marker = spool.submit(
        Job(job="Marker", method="touch", params=[str(env.root / "m")]), by="t", via="t"
    )
    typed = spool.submit(Job(job="Typed", method="add", params=[1, 2]), by="t", via="t")
    wait_until(lambda: status_of(spool, typed) == "completed", 20, "the other job to run")
    assert status_of(spool, marker) == "pending"
    page.click("#resume-Marker")
    expect(page.locator("#pause-Marker")).to_be_visible(timeout=SLOW)
    wait_until(lambda: status_of(spool, marker) == "completed", 20, "the resumed job to run")
    page.once("dialog", lambda dialog: dialog.accept())  # "Pause every job name?"
    page.click("#pause-spool")
    expect(page.locator("#spool-paused")).to_be_visible(timeout=SLOW)
    page.click("#resume-spool")
    expect(page.locator("#pause-spool")).to_be_visible(timeout=SLOW)
