"""End to end in headless Chromium, what a new user met: resubmitting a job
rejected for its params, jobs waiting for later shown as such, a flash that
goes once the job moves on, and an empty log that says so.

As in test_browser_dashboard.py: a real runner, the real server on
127.0.0.1, a private spool.
"""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from jobspool.model import Job, utcnow
from jobspool.spool import Spool
from tests.conftest import SpoolEnv, wait_until
from tests.dashboard.support import LiveServer, spool_of, status_of

SLOW = 25_000  # ms: a job's whole life, on a loaded 2-core machine


def submit(spool: Spool, job: str, method: str, params: list[object], **extra: object) -> str:
    record = Job(job=job, method=method, params=params, **extra)  # type: ignore[arg-type]
    return spool.submit(record, by="test", via="test")


def test_fix_the_params_of_a_rejected_job_and_resubmit_it(
    env: SpoolEnv, server: LiveServer, page: Page
) -> None:
    spool = spool_of(env)
    # Written straight into the spool, as any producer may: the runner rejects it.
    old = submit(spool, "Typed", "add", ["x"])
    env.start_runner()
    wait_until(lambda: status_of(spool, old) == "failed", 20, "the job to be rejected")
    page.goto(server.url + f"jobs/{old}")
    expect(page.locator("#job-status")).to_have_text("failed")
    expect(page.locator("#rejected-note")).to_contain_text("Rejected for its params")
    expect(page.locator("#retry")).to_have_count(0)
    page.click("#resubmit")
    expect(page).to_have_url(re.compile(rf"/jobs/{old}/resubmit$"))
    expect(page.locator("#signature")).to_contain_text("(a: int, b: int = 0)")
    expect(page.locator("#params")).to_have_value('[\n  "x"\n]')
    page.fill("#params", '["still not a number"]')
    page.click("#resubmit-submit")
    expect(page.locator("#error-params")).to_contain_text("param 'a'")
    expect(page.locator("#params")).to_have_value('["still not a number"]')
    page.fill("#params", "[2, 40]")
    page.click("#resubmit-submit")
    expect(page).to_have_url(re.compile(r"/jobs/[\w-]+\?done=resubmitted$"))
    new = page.locator("#job-id").text_content() or ""
    assert new and new != old
    expect(page.locator("#job-status")).to_have_text("completed", timeout=SLOW)
    expect(page.locator("#result")).to_have_text("42")
    expect(page.locator("#resubmitted-from")).to_contain_text(old)
    expect(page.locator(".history")).to_contain_text(f"resubmitted from {old}")
    page.click(f"#resubmitted-from a[href='/jobs/{old}']")
    expect(page.locator("#job-id")).to_have_text(old)
    expect(page.locator("#resubmitted-as")).to_contain_text(new)
    page.click(f"#resubmitted-as a[href='/jobs/{new}']")
    expect(page.locator("#job-id")).to_have_text(new)
    # The old job is left as it was: failed, its record not rewritten.
    assert status_of(spool, old) == "failed"
    assert [h.action for h in spool.get(old).record.history] == ["submitted"]


def test_jobs_waiting_for_later_are_shown_apart_from_ready_ones(
    env: SpoolEnv, server: LiveServer, page: Page
) -> None:
    flaky = dict(env.settings["allowed_jobs"]["Flaky"])
    flaky["retry"] = {"max_attempts": 3, "delay_seconds": 300, "jitter": 0}
    env.write_config(allowed_jobs={**env.settings["allowed_jobs"], "Flaky": flaky})
    spool = spool_of(env)
    later = submit(
        spool, "SampleJob", "process", ["later"], not_before=utcnow() + timedelta(hours=2)
    )
    retrying = submit(spool, "Flaky", "run", [str(env.root / "counter"), 5])
    env.start_runner()
    wait_until(
        lambda: (
            spool.get(retrying).record.next_attempt_at is not None
            and status_of(spool, retrying) == "pending"
        ),
        20,
        "the first attempt to fail and wait for the next",
    )
    page.goto(server.url)
    expect(page.locator("#count-scheduled .n")).to_have_text("2", timeout=SLOW)
    expect(page.locator("#count-pending .n")).to_have_text("0")
    expect(page.locator("#oldest-pending")).to_contain_text("none")
    page.goto(server.url + "jobs?status=pending")
    row = page.locator(f".job-row[data-id='{retrying}']")
    expect(row.locator(".badge")).to_have_text("retrying")
    expect(row.locator(".due")).to_contain_text(re.compile(r"retrying in [45] min"))
    expect(row.locator("td.err")).to_contain_text("last attempt: RuntimeError")
    expect(row.locator("td.when").nth(1)).to_have_text("-")
    expect(page.locator(f".job-row[data-id='{later}'] .badge")).to_have_text("scheduled")
    page.goto(server.url + f"jobs/{retrying}")
    expect(page.locator("#job-status")).to_have_text("retrying")
    expect(page.locator("#waiting")).to_contain_text(
        re.compile(r"retrying at .* UTC \(in [45] min\)")
    )
    expect(page.locator("#status-line")).to_contain_text("pending, retrying at")
    page.goto(server.url + f"jobs/{later}")
    expect(page.locator("#job-status")).to_have_text("scheduled")
    expect(page.locator("#waiting")).to_contain_text(
        re.compile(r"scheduled for .* \(in (1 h 59|2 h 0) min\)")
    )
    expect(page.locator("#log-empty")).to_have_text("No output yet.")


def test_the_retry_flash_goes_once_the_job_has_failed_again(
    env: SpoolEnv, server: LiveServer, page: Page
) -> None:
    spool = spool_of(env)
    counter = env.root / "flaky-counter"
    job_id = submit(spool, "Flaky", "run", [str(counter), 10], max_attempts=1)
    env.start_runner()
    wait_until(lambda: status_of(spool, job_id) == "failed", 20, "the first attempt to fail")
    page.goto(server.url + f"jobs/{job_id}")
    page.click("#retry")
    expect(page.locator(".flash")).to_contain_text("Sent back to pending")
    wait_until(lambda: spool.get(job_id).record.revision >= 4, 20, "the retry to fail again")
    expect(page.locator("#job-status")).to_have_text("failed", timeout=SLOW)
    expect(page.locator(".flash")).to_have_count(0, timeout=SLOW)
    expect(page.locator(".error-box")).to_contain_text("planned failure 2 of 10")
    # A reload of the same address says the flash is old news, and the live part drops it.
    page.reload()
    expect(page.locator(".flash")).to_have_count(0, timeout=SLOW)


def test_an_empty_log_says_so(env: SpoolEnv, server: LiveServer, page: Page) -> None:
    spool = spool_of(env)
    job_id = submit(spool, "Typed", "add", [1, 2], not_before=utcnow() + timedelta(seconds=2))
    page.goto(server.url + f"jobs/{job_id}")
    expect(page.locator("#log-empty")).to_have_text("No output yet.")
    expect(page.locator("#log")).to_be_hidden()
    env.start_runner()
    expect(page.locator("#job-status")).to_have_text("completed", timeout=SLOW)
    expect(page.locator("#log-empty")).to_have_text("This attempt wrote no output.", timeout=SLOW)
    page.reload()
    expect(page.locator("#log-empty")).to_have_text("This attempt wrote no output.")
    expect(page.locator("#log")).to_be_hidden()
