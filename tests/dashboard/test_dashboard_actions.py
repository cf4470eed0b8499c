"""Retry, cancel, bulk retry and submit from the dashboard, on real spools and runners."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import pytest

from jobspool.dashboard.state import Dashboard
from jobspool.model import ErrorInfo, Job
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv, wait_until
from tests.dashboard.support import Client, client_for, finished_job, make_dashboard, status_of

ACTOR = "dashboard@127.0.0.1"


# ------------------------------------------------------------------ retry


def test_retry_from_the_page_sends_a_failed_job_back_and_records_who(
    client: Client, spool: Spool
) -> None:
    job_id = finished_job(spool, Status.FAILED, error=ErrorInfo(type="E", message="m"))
    res = client.form(f"/jobs/{job_id}/retry")
    assert res.status == 303
    assert (res.header("Location") or "").endswith(f"/jobs/{job_id}?done=retried")
    assert status_of(spool, job_id) == "pending"
    record = spool.get(job_id).record
    assert record.history[-1].action == "retried"
    assert record.history[-1].by == ACTOR and record.history[-1].via == "dashboard"
    assert record.error is None and record.attempt_base == 1
    page = client.get(f"/jobs/{job_id}?done=retried").text
    assert "Sent back to pending" in page


def test_retry_and_cancel_through_the_api(client: Client, spool: Spool) -> None:
    failed = finished_job(spool, Status.FAILED)
    res = client.api_post(f"/api/jobs/{failed}/retry")
    assert res.status == 200
    assert res.json() == {"id": failed, "outcome": "retried", "status": "pending"}
    res = client.api_post(f"/api/jobs/{failed}/cancel")
    assert res.json() == {"id": failed, "outcome": "cancelled", "status": "cancelled"}
    record = spool.get(failed).record
    assert [h.action for h in record.history] == ["submitted", "retried", "cancelled"]
    assert record.history[-1].via == "dashboard"


def test_actions_on_the_wrong_status_are_409_and_change_nothing(
    client: Client, spool: Spool
) -> None:
    done = finished_job(spool, Status.COMPLETED)
    pending = spool.submit(Job(job="SampleJob", method="process"), by="t", via="t")
    for path in (f"/jobs/{done}/retry", f"/jobs/{done}/cancel", f"/jobs/{pending}/retry"):
        res = client.form(path)
        assert res.status == 409, path
        assert "only" in res.text
    api = client.api_post(f"/api/jobs/{done}/cancel")
    assert api.status == 409
    assert "completed" in api.json()["error"]
    assert status_of(spool, done) == "completed"
    assert status_of(spool, pending) == "pending"
    missing = "20990101-000000-000000-00000000"
    assert client.form(f"/jobs/{missing}/retry").status == 404
    assert client.api_post(f"/api/jobs/{missing}/cancel").status == 404


def test_two_people_retrying_at_once_get_exactly_one_success(env: SpoolEnv, spool: Spool) -> None:
    dash = make_dashboard(env)
    jobs = [finished_job(spool, Status.FAILED) for _ in range(8)]
    for job_id in jobs:
        codes = race_retry(dash, job_id)
        assert sorted(codes) == [200, 409], codes
        assert spool.names(Status.PENDING).count(f"{job_id}.json") == 1
        assert f"{job_id}.json" not in spool.names(Status.FAILED)
        history = [h.action for h in spool.get(job_id).record.history]
        assert history.count("retried") == 1


def race_retry(dash: Dashboard, job_id: str) -> list[int]:
    """Two people press retry on the same job at the same instant."""
    clients = [client_for(dash), client_for(dash)]
    tokens = [c.csrf() for c in clients]
    codes: list[int] = []
    barrier = threading.Barrier(2)

    def press(c: Client, token: str) -> None:
        barrier.wait()
        res = c.post(f"/api/jobs/{job_id}/retry", json_body={}, headers={"X-CSRF-Token": token})
        codes.append(res.status)

    threads = [
        threading.Thread(target=press, args=pair) for pair in zip(clients, tokens, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return codes


def test_cancel_racing_a_runner_has_one_outcome_per_job(
    env: SpoolEnv, client: Client, spool: Spool
) -> None:
    marks = [env.root / f"mark-{i}" for i in range(12)]
    ids = [
        spool.submit(Job(job="Marker", method="touch", params=[str(m)]), by="t", via="t")
        for m in marks
    ]
    env.start_runner("--workers", "2")
    outcomes = {}
    for job_id in ids:
        res = client.api_post(f"/api/jobs/{job_id}/cancel")
        assert res.status in (200, 409), res.text
        outcomes[job_id] = res.json().get("outcome", "conflict")

    def finished(job_id: str) -> bool:
        return status_of(spool, job_id) in ("completed", "cancelled")

    final: dict[str, str] = {}
    for job_id in ids:
        wait_until(functools.partial(finished, job_id), 20, f"{job_id} to finish")
        final[job_id] = status_of(spool, job_id) or ""
        seen = [s for s in Status if any(n.startswith(job_id) for n in spool.names(s))]
        assert len(seen) == 1, (job_id, seen)
    for (job_id, outcome), mark in zip(outcomes.items(), marks, strict=True):
        if outcome == "cancelled":
            assert final[job_id] == "cancelled" and not mark.exists()
        elif outcome == "conflict":
            assert final[job_id] == "completed" and mark.exists()


def test_cancel_a_running_job_stops_it(env: SpoolEnv, client: Client, spool: Spool) -> None:
    started = env.root / "started"
    job_id = spool.submit(
        Job(job="Sleeper", method="sleep", params=[30, "", str(started)]), by="t", via="t"
    )
    env.start_runner()
    wait_until(started.exists, 20, "the sleeper to start")
    wait_until(lambda: status_of(spool, job_id) == "running", 10, "running")
    res = client.form(f"/jobs/{job_id}/cancel")
    assert res.status == 303
    assert "done=cancel-requested" in (res.header("Location") or "")
    assert "Cancel requested" in client.get(f"/jobs/{job_id}?done=cancel-requested").text
    wait_until(lambda: status_of(spool, job_id) == "cancelled", 20, "the job to be cancelled")
    record = spool.get(job_id).record
    assert record.history[-1].action == "cancelled"
    assert record.history[-1].by == ACTOR and record.history[-1].via == "dashboard"
    assert record.attempts[-1].outcome.value == "cancelled"


# ------------------------------------------------------------------ bulk


def test_bulk_retry_retries_only_the_matching_failed_jobs(client: Client, spool: Spool) -> None:
    failing = [
        finished_job(spool, Status.FAILED, job="Failing", method="bad", params=[f"m{i}"])
        for i in range(3)
    ]
    others = [finished_job(spool, Status.FAILED, params=["keep"]) for _ in range(2)]
    done = finished_job(spool, Status.COMPLETED, job="Failing", method="bad")
    res = client.api_post("/api/actions/retry-failed", {"job": "Failing", "limit": 2})
    assert res.status == 200
    data = res.json()
    assert data["matched"] == 3 and data["retried"] == 2 and data["remaining"] == 1
    assert data["ids"] == sorted(failing)[:2], "oldest first"
    res = client.form("/actions/retry-failed", {"job": "Failing", "q": ""})
    assert res.status == 303
    location = res.header("Location") or ""
    assert "done=bulk" in location and "n=1" in location
    assert "Retried 1 failed job." in client.get(location.split("8080", 1)[1]).text
    assert all(status_of(spool, j) == "pending" for j in failing)
    assert all(status_of(spool, j) == "failed" for j in others)
    assert status_of(spool, done) == "completed"
    by_search = client.api_post("/api/actions/retry-failed", {"q": "keep"}).json()
    assert by_search["retried"] == 2
    history = spool.get(others[0]).record.history[-1]
    assert (history.action, history.by, history.via) == ("retried", ACTOR, "dashboard")
    assert client.api_post("/api/actions/retry-failed", {"job": "bad name!"}).status == 400


# ------------------------------------------------------------------ submit


def test_submit_form_queues_a_validated_job(client: Client, spool: Spool) -> None:
    form = client.get("/submit").text
    assert 'value="Typed"' in form and 'data-job="Typed"' in form
    assert "(a: int, b: int = 0) -&gt; int" in form
    res = client.form(
        "/submit",
        {
            "job": "Typed",
            "method": "add",
            "params": "[2, 3]",
            "priority": "5",
            "delay": "",
            "max_attempts": "2",
            "timeout": "9.5",
        },
    )
    assert res.status == 303, res.text
    job_id = (res.header("Location") or "").rsplit("/", 1)[1].split("?")[0]
    record = spool.get(job_id).record
    assert (record.job, record.method, record.params) == ("Typed", "add", [2, 3])
    assert (record.priority, record.max_attempts, record.timeout_seconds) == (5, 2, 9.5)
    assert record.history[0].via == "dashboard" and record.submitted_by == ACTOR
    assert "Submitted." in client.get(f"/jobs/{job_id}?done=submitted").text


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"job": "NoSuchJob", "method": "run"}, "job", "not in the allow-list"),
        ({"job": "Typed", "method": "sub"}, "method", "not allowed for Typed"),
        ({"job": "Typed", "method": "add", "params": "[1,"}, "params", "not valid JSON"),
        ({"job": "Typed", "method": "add", "params": '"one"'}, "params", "a JSON list"),
        ({"job": "Typed", "method": "add", "params": '["x"]'}, "params", "param &#039;a&#039;"),
        ({"job": "Typed", "method": "add", "params": "[1, 2, 3]"}, "params", "too many"),
        ({"job": "Typed", "method": "add", "priority": "high"}, "priority", "whole number"),
        ({"job": "Typed", "method": "add", "max_attempts": "0"}, "max_attempts", "between"),
        ({"job": "Typed", "method": "add", "delay": "-1"}, "delay", "between"),
        ({"job": "", "method": ""}, "job", "choose a job"),
    ],
)
def test_submit_errors_are_shown_inline_and_nothing_is_written(
    client: Client, spool: Spool, fields: dict[str, str], field: str, message: str
) -> None:
    res = client.form("/submit", fields)
    assert res.status == 400
    assert message in res.text
    if field in ("job", "method", "params"):
        assert f'id="error-{field}"' in res.text
    if fields.get("params"):
        assert "&quot;" in res.text or fields["params"] in res.text, "the input is kept"
    assert spool.names(Status.PENDING) == []


def test_submit_api_validates_like_the_cli(client: Client, spool: Spool) -> None:
    res = client.api_post(
        "/api/jobs", {"job": "Typed", "method": "greet", "params": {"name": "ann", "loud": True}}
    )
    assert res.status == 201
    job_id = res.json()["id"]
    assert res.header("Location") == f"/api/jobs/{job_id}"
    assert spool.get(job_id).record.params == {"name": "ann", "loud": True}
    bad = client.api_post("/api/jobs", {"job": "Typed", "method": "greet", "params": {"nom": 1}})
    assert bad.status == 400
    assert set(bad.json()["fields"]) == {"params"}
    assert (
        client.post(
            "/api/jobs",
            body=b"[1]",
            headers={"Content-Type": "application/json", "X-CSRF-Token": client.csrf()},
        ).status
        == 400
    )
    assert len(spool.names(Status.PENDING)) == 1


def test_allowed_jobs_follow_the_config_file(env: SpoolEnv, client: Client) -> None:
    names = [j["job"] for j in client.get("/api/allowed-jobs").json()["jobs"]]
    assert "Typed" in names and "Extra" not in names
    jobs = dict(env.settings["allowed_jobs"])
    jobs["Extra"] = {"class": "tests.support.testjobs.Typed", "allowed_methods": ["add"]}
    env.write_config(allowed_jobs=jobs)
    wait_until(
        lambda: "Extra" in [j["job"] for j in client.get("/api/allowed-jobs").json()["jobs"]],
        5,
        "the new allow-list",
    )
    res = client.api_post("/api/jobs", {"job": "Extra", "method": "add", "params": [1]})
    assert res.status == 201


def test_submitted_jobs_run(env: SpoolEnv, client: Client, spool: Spool) -> None:
    target = Path(env.root / "made-by-form")
    res = client.form(
        "/submit", {"job": "Marker", "method": "touch", "params": f'["{target}", "hello"]'}
    )
    job_id = (res.header("Location") or "").rsplit("/", 1)[1].split("?")[0]
    result = env.burst()
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "hello"
    assert client.get(f"/api/jobs/{job_id}").json()["result"] == "hello"
