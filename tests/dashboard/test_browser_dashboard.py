"""End to end in headless Chromium: a real runner, the real server, the real UI.

Each test runs a runner process and the waitress server on 127.0.0.1 (an
OS-chosen port) over a private spool, and drives the pages with Playwright.
"Without a reload" is checked with a marker set on ``window``: a reload
would drop it.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from jobspool.model import Job
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv, wait_until
from tests.dashboard.support import LiveServer, spool_of, status_of

SLOW = 25_000  # ms: a job's whole life, on a loaded 2-core machine


def submit(
    spool: Spool, job: str, method: str, params: list[object], max_attempts: int | None = None
) -> str:
    record = Job(job=job, method=method, params=params, max_attempts=max_attempts)
    return spool.submit(record, by="test", via="test")


def mark(page: Page) -> None:
    page.evaluate("window.__noReload = 'still here'")


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__noReload === 'still here'"))


def test_overview_then_filter_the_list(env: SpoolEnv, server: LiveServer, page: Page) -> None:
    spool = spool_of(env)
    for i in range(3):
        submit(spool, "SampleJob", "process", [f"item-{i}"])
    submit(spool, "Failing", "bad", ["needle in the haystack"])
    submit(spool, "Failing", "bad", ["just hay"])
    assert env.burst().returncode == 0
    page.goto(server.url)
    expect(page.locator("#count-completed .n")).to_have_text("3", timeout=SLOW)
    expect(page.locator("#count-failed .n")).to_have_text("2")
    expect(page.locator(".per-job")).to_contain_text("Failing.bad")
    page.click("#count-failed")
    expect(page).to_have_url(re.compile(r"/jobs\?status=failed$"))
    expect(page.locator(".job-row")).to_have_count(2)
    mark(page)
    page.fill("input[name=q]", "needle")
    page.press("input[name=q]", "Enter")
    expect(page.locator(".job-row")).to_have_count(1)
    expect(page.locator("#job-list")).to_contain_text("needle")
    expect(page).to_have_url(re.compile(r"q=needle"))
    page.fill("input[name=q]", "")
    page.select_option("select[name=status]", "completed")
    expect(page.locator(".job-row")).to_have_count(3)
    assert not_reloaded(page), "filtering must not reload the page"


def test_retry_a_failed_job_and_watch_it_complete(
    env: SpoolEnv, server: LiveServer, page: Page
) -> None:
    spool = spool_of(env)
    counter = env.root / "flaky-counter"
    job_id = submit(spool, "Flaky", "run", [str(counter), 1], max_attempts=1)
    env.start_runner()
    wait_until(lambda: status_of(spool, job_id) == "failed", 20, "the first attempt to fail")
    page.goto(server.url + f"jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("failed")
    expect(page.locator(".error-box")).to_contain_text("planned failure 1 of 1")
    page.click("#retry")
    expect(page.locator(".flash")).to_contain_text("Sent back to pending")
    mark(page)
    expect(page.locator("#job-status")).to_have_text("completed", timeout=SLOW)
    expect(page.locator("#result")).to_have_text("2")
    expect(page.locator(".history")).to_contain_text("retried")
    expect(page.locator(".history")).to_contain_text("dashboard@127.0.0.1")
    expect(page.locator(".attempts tbody tr")).to_have_count(2)
    assert not_reloaded(page), "the status must update without a reload"


def test_cancel_a_running_job_while_its_log_grows(
    env: SpoolEnv, server: LiveServer, page: Page
) -> None:
    spool = spool_of(env)
    job_id = submit(spool, "Sleeper", "sleep", [60])
    env.start_runner()
    wait_until(lambda: status_of(spool, job_id) == "running", 20, "the job to start")
    page.goto(server.url + f"jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("running")
    mark(page)
    log = page.locator("#log")
    expect(log).to_contain_text("tick", timeout=SLOW)
    first = len(log.text_content() or "")
    # (wait_for_function evaluates a string in the page, which the CSP rightly forbids)
    wait_until(lambda: len(log.text_content() or "") > first + 200, SLOW / 1000, "the log to grow")
    assert not_reloaded(page), "the log must grow without a reload"
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    expect(page.locator(".flash")).to_contain_text("Cancel requested")
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=SLOW)
    expect(page.locator(".history")).to_contain_text("cancelled")
    assert status_of(spool, job_id) == "cancelled"


def test_submit_a_job_from_the_form(env: SpoolEnv, server: LiveServer, page: Page) -> None:
    env.start_runner()
    page.goto(server.url + "submit")
    page.select_option("#job", "Typed")
    expect(page.locator("#method option[data-job=Typed]:not([disabled])")).to_have_count(2)
    page.select_option("#method", "add")
    expect(page.locator("#signature")).to_contain_text("(a: int, b: int = 0)")
    page.fill("#params", '["x"]')
    page.click("#submit")
    expect(page.locator("#error-params")).to_contain_text("param 'a'")
    expect(page.locator("#params")).to_have_value('["x"]')
    page.fill("#params", "[2, 40]")
    page.click("#submit")
    expect(page).to_have_url(re.compile(r"/jobs/[\w-]+\?done=submitted$"))
    expect(page.locator("#job-status")).to_have_text("completed", timeout=SLOW)
    expect(page.locator("#result")).to_have_text("42")
    job_id = page.locator("#job-id").text_content() or ""
    record = spool_of(env).get(job_id).record
    assert record.history[0].via == "dashboard" and record.result == 42


def test_progress_shows_while_the_job_runs(env: SpoolEnv, server: LiveServer, page: Page) -> None:
    spool = spool_of(env)
    job_id = submit(spool, "Progressing", "steps", [30, 0.08])
    env.start_runner()
    page.goto(server.url + f"jobs/{job_id}")
    expect(page.locator("#progress progress")).to_be_visible(timeout=SLOW)
    expect(page.locator("#progress")).to_contain_text("step")
    expect(page.locator("#job-status")).to_have_text("completed", timeout=SLOW)
    expect(page.locator("#progress")).to_contain_text("100 %")
    assert spool.get(job_id).status == Status.COMPLETED.value
