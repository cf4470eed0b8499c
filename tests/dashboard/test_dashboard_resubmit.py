"""Edit and resubmit, and jobs waiting for later, through the routes in-process.

Resubmitting queues a new job by the submission path (validated as submit
validates, written by ``Spool.submit``) and links the two jobs: the new job's
own "submitted" entry names the old one, and the old job (never rewritten)
finds its resubmissions through the index. Pending jobs that are not due
(``Job.waiting_until``) are counted and shown apart as scheduled.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from jobspool import resubmit_job
from jobspool.errors import Conflict, InvalidParams
from jobspool.model import Job, utcnow
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv
from tests.dashboard.support import (
    Client,
    client_for,
    every_kind_of_job,
    finished_job,
    make_dashboard,
    rejected_job,
    retrying_job,
    scheduled_job,
    status_of,
)

ACTOR = "dashboard@127.0.0.1"


def _pending(spool: Spool) -> int:
    return spool.count(Status.PENDING)


# ------------------------------------------------------------------ the API route


def test_resubmit_api_queues_a_new_job_linked_both_ways(client: Client, spool: Spool) -> None:
    old = rejected_job(spool)
    res = client.api_post(f"/api/jobs/{old}/resubmit", {"params": [2, 40]})
    assert res.status == 201
    body = res.json()
    new = body["id"]
    assert body == {"id": new, "status": "pending", "resubmitted_from": old}
    assert res.header("Location") == f"/api/jobs/{new}"
    assert new != old and status_of(spool, new) == "pending"
    record = spool.get(new).record
    assert (record.job, record.method, record.params) == ("Typed", "add", [2, 40])
    [entry] = record.history
    assert (entry.action, entry.by, entry.via) == ("submitted", ACTOR, "dashboard")
    assert entry.note == f"resubmitted from {old}"
    # The old job is finished and stays exactly as it was.
    assert status_of(spool, old) == "failed"
    assert spool.get(old).record.revision == 2
    old_detail = client.get(f"/api/jobs/{old}").json()
    assert old_detail["resubmissions"] == [new]
    assert old_detail["resubmit"] == f"/api/jobs/{old}/resubmit"
    assert old_detail["actions"] == [], "no plain retry for a job rejected for its params"
    new_detail = client.get(f"/api/jobs/{new}").json()
    assert new_detail["resubmitted_from"] == old and new_detail["resubmit"] is None
    listed = client.get("/api/jobs?status=pending").json()["jobs"]
    assert [j["resubmitted_from"] for j in listed] == [old]
    # Both pages link to the other.
    assert f'href="/jobs/{new}"' in client.get(f"/jobs/{old}").text
    assert f'href="/jobs/{old}"' in client.get(f"/jobs/{new}").text


def test_resubmit_keeps_the_jobs_own_settings(client: Client, spool: Spool) -> None:
    old = spool.submit(
        Job(job="Typed", method="add", params=[1], priority=7, max_attempts=1, timeout_seconds=5),
        by="t",
        via="t",
    )
    client.api_post(f"/api/jobs/{old}/cancel")
    new = client.api_post(f"/api/jobs/{old}/resubmit", {"params": {"a": 3}}).json()["id"]
    record = spool.get(new).record
    assert (record.priority, record.max_attempts, record.timeout_seconds) == (7, 1, 5)
    assert record.params == {"a": 3} and record.not_before is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"params": ["x"]}, "param 'a'"),
        ({"params": [1, 2, 3]}, ""),
        ({"params": "[1,"}, "not valid JSON"),
        ({"params": 5}, "JSON list"),
        ({}, "required"),
    ],
)
def test_bad_params_are_400_with_a_field_error_and_write_nothing(
    client: Client, spool: Spool, body: dict[str, object], says: str
) -> None:
    old = rejected_job(spool)
    before = _pending(spool)
    res = client.api_post(f"/api/jobs/{old}/resubmit", body)
    assert res.status == 400
    data = res.json()
    assert data["status"] == 400 and set(data["fields"]) == {"params"}
    assert says in data["fields"]["params"]
    assert _pending(spool) == before


def test_resubmit_of_a_job_still_in_play_or_completed_is_409(client: Client, spool: Spool) -> None:
    done = finished_job(spool, Status.COMPLETED)
    pending = spool.submit(Job(job="Typed", method="add", params=[1]), by="t", via="t")
    for job_id in (done, pending):
        res = client.api_post(f"/api/jobs/{job_id}/resubmit", {"params": [1]})
        assert res.status == 409 and "only failed or cancelled" in res.json()["error"]
        assert client.get(f"/jobs/{job_id}/resubmit").status == 409
    assert _pending(spool) == 1


def test_resubmit_of_no_such_job_is_404(client: Client) -> None:
    assert client.api_post("/api/jobs/20990101-000000-0-0/resubmit", {"params": []}).status == 404
    assert client.api_post("/api/jobs/..%2f..%2fetc/resubmit", {"params": []}).status == 404


def test_resubmit_needs_csrf_and_is_post_only(client: Client, spool: Spool) -> None:
    old = rejected_job(spool)
    path = f"/api/jobs/{old}/resubmit"
    assert client.post(path, json_body={"params": [1]}).status == 403
    assert client.post(f"/jobs/{old}/resubmit", data={"params": "[1]"}).status == 403
    assert client.get(path).status == 405
    assert _pending(spool) == 0


def test_resubmit_needs_the_token_when_there_is_one(env: SpoolEnv, spool: Spool) -> None:
    old = rejected_job(spool)
    locked = client_for(make_dashboard(env, token="a-token-long-enough-for-tests"))
    assert locked.form(f"/api/jobs/{old}/resubmit", {"params": "[1]"}).status == 401
    assert _pending(spool) == 0


# ------------------------------------------------------------------ the form


def test_resubmit_form_is_prefilled_validates_and_redirects(client: Client, spool: Spool) -> None:
    old = rejected_job(spool)
    page = client.get(f"/jobs/{old}/resubmit")
    assert page.status == 200
    assert "[\n  &quot;x&quot;\n]" in page.text
    assert "(a: int, b: int = 0)" in page.text
    bad = client.form(f"/jobs/{old}/resubmit", {"params": '["y"]'})
    assert bad.status == 400 and 'id="error-params"' in bad.text and "&quot;y&quot;" in bad.text
    good = client.form(f"/jobs/{old}/resubmit", {"params": "[2]"})
    assert good.status == 303
    location = good.header("Location") or ""
    found = re.search(r"/jobs/([\w.-]+)\?done=resubmitted$", location)
    assert found, location
    assert (
        "Resubmitted as this new job" in client.get(f"/jobs/{found.group(1)}?done=resubmitted").text
    )


def test_the_job_page_offers_resubmit_and_no_futile_retry(client: Client, spool: Spool) -> None:
    ids = every_kind_of_job(spool)
    rejected = client.get(f"/jobs/{ids['rejected']}").text
    assert 'id="resubmit"' in rejected and 'id="retry"' not in rejected
    failed = client.get(f"/jobs/{ids['failed']}").text
    assert 'id="resubmit"' in failed and 'id="retry"' in failed
    for kind in ("pending", "running", "completed", "scheduled"):
        assert 'id="resubmit"' not in client.get(f"/jobs/{ids[kind]}").text, kind


def test_resubmit_job_from_python(env: SpoolEnv, spool: Spool) -> None:
    old = rejected_job(spool)
    with pytest.raises(InvalidParams):
        resubmit_job(old, ["nope"], config=str(env.config))
    view = resubmit_job(old, {"a": 1, "b": 2}, config=str(env.config), by="ops@example")
    assert view.status == "pending" and view.id != old
    assert view.record.history[0].note == f"resubmitted from {old}"
    assert view.record.submitted_by == "ops@example"
    with pytest.raises(Conflict):
        resubmit_job(view.id, [1], config=str(env.config))


# ------------------------------------------------------------------ scheduled


def test_overview_counts_scheduled_jobs_apart_and_oldest_pending_only_due(
    client: Client, spool: Spool
) -> None:
    scheduled_job(spool)
    retrying_job(spool)
    data = client.get("/api/overview").json()
    assert data["counts"]["pending"] == 2, "counts stay the number of files per status"
    assert (data["scheduled"], data["ready"]) == (2, 0)
    assert data["oldest_pending"] is None, "a job waiting for later is not late work"
    ready = spool.submit(Job(job="SampleJob", method="process"), by="t", via="t")
    data = client.get("/api/overview").json()
    assert (data["scheduled"], data["ready"]) == (2, 1)
    assert data["oldest_pending"]["id"] == ready
    page = client.get("/").text
    assert re.search(r'id="count-scheduled"[^>]*>\s*<span class="n">2<', page)
    assert re.search(r'id="count-pending"[^>]*>\s*<span class="n">1<', page)
    metrics = client.get("/metrics").text
    assert "\njobspool_scheduled_jobs 2\n" in metrics


def test_list_and_job_api_say_when_a_pending_job_is_due(client: Client, spool: Spool) -> None:
    later = scheduled_job(spool, in_seconds=3600)
    retrying = retrying_job(spool, in_seconds=300)
    ready = spool.submit(Job(job="SampleJob", method="process"), by="t", via="t")
    jobs = {j["id"]: j for j in client.get("/api/jobs?status=pending").json()["jobs"]}
    assert jobs[later]["state"] == "scheduled" and jobs[later]["waiting_until"]
    assert jobs[later]["due_at"] == jobs[later]["waiting_until"]
    assert jobs[retrying]["state"] == "retrying"
    assert jobs[retrying]["waiting_until"] == jobs[retrying]["next_attempt_at"]
    assert jobs[ready]["state"] == "pending" and jobs[ready]["waiting_until"] is None
    assert jobs[ready]["due_at"] is None and jobs[ready]["status"] == "pending"
    detail = client.get(f"/api/jobs/{retrying}").json()
    assert detail["state"] == "retrying" and detail["status"] == "pending"
    listing = client.get("/jobs?status=pending").text
    assert re.search(r"retrying in [45] min", listing)
    assert "last attempt: RuntimeError: planned failure 1 of 3" in listing
    page = client.get(f"/jobs/{later}").text
    assert re.search(r"scheduled for [\d-]+ [\d:]+ UTC \(in (59 min|1 h 0 min)\)", page)


def test_a_job_that_became_due_is_ready_again(client: Client, spool: Spool) -> None:
    spool.submit(
        Job(job="SampleJob", method="process", not_before=utcnow() - timedelta(seconds=1)),
        by="t",
        via="t",
    )
    data = client.get("/api/overview").json()
    assert (data["scheduled"], data["ready"]) == (0, 1)


# ------------------------------------------------------------------ the running attempt


def test_a_running_job_shows_its_attempt_as_current(client: Client, spool: Spool) -> None:
    ids = every_kind_of_job(spool)
    page = client.get(f"/jobs/{ids['running']}").text
    assert "No attempt yet" not in page
    assert 'id="current-attempt"' in page and "gone-runner" in page
    assert re.search(r'id="attempts-used">1 used \(attempt 1 in progress\)<', page)
    assert client.get(f"/api/jobs/{ids['running']}").json()["current_attempt"] == 1


# ------------------------------------------------------------------ the flash


def test_a_jobs_flash_lasts_only_while_the_job_is_where_the_action_left_it(
    client: Client, spool: Spool
) -> None:
    job_id = finished_job(spool, Status.FAILED)
    client.form(f"/jobs/{job_id}/retry")
    live = f"/partials/job/{job_id}?done=retried"
    assert "Sent back to pending" in client.get(live).text
    assert f'data-live="{live}"' in client.get(f"/jobs/{job_id}?done=retried").text
    # A runner takes it and it fails again: the flash has had its day.
    view = spool.get(job_id)
    spool.move(view.path, Status.PENDING, Status.CANCELLED, view.record)
    assert 'class="flash"' not in client.get(live).text
    reloaded = client.get(f"/jobs/{job_id}?done=retried").text
    assert "moved on since" in reloaded


def test_api_shapes_stay_for_existing_readers(client: Client, spool: Spool) -> None:
    job_id = finished_job(spool, Status.FAILED)
    detail = client.get(f"/api/jobs/{job_id}").json()
    assert detail["actions"] == ["retry"] and detail["status"] == "failed"
    row = client.get("/api/jobs").json()["jobs"][0]
    assert json.dumps(row)  # plain JSON
    assert row["status"] == "failed" and row["state"] == "failed"
