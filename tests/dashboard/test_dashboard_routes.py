"""Every dashboard route, called in-process on a real spool (no sockets)."""

from __future__ import annotations

import json
import re
import time

import pytest

from jobspool.model import ErrorInfo, Job
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv
from tests.dashboard.support import Client, client_for, finished_job, spool_of

ACTION_ROUTES = [
    "/jobs/{id}/retry",
    "/jobs/{id}/cancel",
    "/api/jobs/{id}/retry",
    "/api/jobs/{id}/cancel",
    "/actions/retry-failed",
    "/api/actions/retry-failed",
    "/logout",
]


def _mixed(spool: Spool) -> dict[str, str]:
    """One job per status (running excepted), with recognisable params."""
    return {
        "completed": finished_job(spool, Status.COMPLETED, params=["alpha"], result={"n": 1}),
        "failed": finished_job(
            spool,
            Status.FAILED,
            job="Failing",
            method="bad",
            params=["beta"],
            error=ErrorInfo(type="BadInput", message="gamma went wrong", traceback="Trace\n..."),
        ),
        "cancelled": finished_job(spool, Status.CANCELLED, params=["delta"]),
        "pending": spool.submit(
            Job(job="Typed", method="add", params=[1, 2]), by="tests", via="tests"
        ),
    }


# ------------------------------------------------------------------ pages


def test_every_page_renders(client: Client, spool: Spool) -> None:
    ids = _mixed(spool)
    pages = ["/", "/jobs", "/submit", "/partials/overview", "/partials/jobs"]
    pages += [f"/jobs/{i}" for i in ids.values()] + [f"/partials/job/{i}" for i in ids.values()]
    pages += [f"/jobs?status={s.value}" for s in Status]
    for path in pages:
        res = client.get(path)
        assert res.status == 200, path
        assert res.header("Content-Type") == "text/html; charset=utf-8", path
    overview = client.get("/").text
    for status in ("pending", "completed", "failed", "cancelled"):
        assert f'href="/jobs?status={status}"' in overview
    assert re.search(r'id="count-failed">\s*<span class="n">1<', overview)


def test_job_page_shows_record_attempts_history_and_params(client: Client, spool: Spool) -> None:
    ids = _mixed(spool)
    page = client.get(f"/jobs/{ids['failed']}").text
    for expected in (
        "Failing.bad",
        "BadInput",
        "gamma went wrong",
        "Trace",
        "beta",
        "test-runner",
        "testhost",
        "4242",
        "submitted",
        "tests",
        'id="retry"',
    ):
        assert expected in page, expected
    assert 'id="cancel"' not in page
    done = client.get(f"/jobs/{ids['completed']}").text
    assert 'id="result"' in done and "&quot;n&quot;: 1" in done
    assert 'id="retry"' not in done and 'id="cancel"' not in done
    pending = client.get(f"/jobs/{ids['pending']}").text
    assert 'id="cancel"' in pending and 'data-follow="1"' in pending


def test_list_filters_search_sort_and_paginate(client: Client, spool: Spool) -> None:
    ids = _mixed(spool)
    more = [
        finished_job(spool, Status.COMPLETED, params=[f"item-{i}"], duration=i) for i in range(25)
    ]
    api = client.get("/api/jobs?per_page=20").json()
    assert api["total"] == 29 and api["pages"] == 2 and len(api["jobs"]) == 20
    assert [j["id"] for j in api["jobs"]] == sorted([*ids.values(), *more], reverse=True)[:20]
    second = client.get("/api/jobs?per_page=20&page=2").json()
    assert len(second["jobs"]) == 9
    oldest = client.get("/api/jobs?sort=oldest&per_page=20").json()["jobs"]
    assert oldest[0]["id"] == min([*ids.values(), *more])
    failed = client.get("/api/jobs?status=failed").json()
    assert [j["id"] for j in failed["jobs"]] == [ids["failed"]]
    by_name = client.get("/api/jobs?job=Failing").json()
    assert [j["id"] for j in by_name["jobs"]] == [ids["failed"]]
    by_error = client.get("/api/jobs?q=GAMMA").json()
    assert [j["id"] for j in by_error["jobs"]] == [ids["failed"]]
    by_params = client.get("/api/jobs?q=item-7").json()
    assert [j["id"] for j in by_params["jobs"]] == [more[7]]
    by_id = client.get(f"/api/jobs?q={ids['cancelled'][-8:]}").json()
    assert [j["id"] for j in by_id["jobs"]] == [ids["cancelled"]]
    longest = client.get("/api/jobs?status=completed&sort=duration&per_page=20").json()["jobs"]
    assert longest[0]["id"] == more[-1]
    finished = client.get("/api/jobs?sort=finished&status=completed&per_page=20").json()["jobs"]
    assert finished[0]["id"] == more[-1]
    html = client.get("/jobs?status=completed&q=item-1&sort=oldest").text
    assert html.count('class="job-row"') == 11
    assert 'name="q" value="item-1"' in html
    assert "page 1 of 2" in client.get("/jobs?per_page=20").text


def test_bad_list_parameters_are_400(client: Client) -> None:
    for query in ("status=bogus", "sort=sideways", "per_page=7", "page=x", "job=no%20such"):
        assert client.get(f"/api/jobs?{query}").status == 400, query
        assert client.get(f"/jobs?{query}").status == 400, query


def test_job_api_and_detail_shapes(client: Client, spool: Spool) -> None:
    ids = _mixed(spool)
    data = client.get(f"/api/jobs/{ids['failed']}").json()
    assert data["id"] == ids["failed"] and data["status"] == "failed"
    assert data["error"]["type"] == "BadInput"
    assert data["attempts"][0]["runner"] == "test-runner"
    assert data["history"][0]["action"] == "submitted"
    assert data["actions"] == ["retry"]
    assert data["log"] == {"size": None, "url": f"/api/jobs/{ids['failed']}/log"}
    assert "path" not in data
    summary = client.get("/api/jobs?status=failed").json()["jobs"][0]
    assert set(summary) >= {
        "id",
        "status",
        "job",
        "method",
        "created_at",
        "finished_at",
        "duration_seconds",
        "attempts",
        "error",
        "reason",
    }
    assert client.get("/api/jobs/20990101-000000-000000-00000000").status == 404


def test_overview_api_counts_rates_durations_and_oldest_pending(
    client: Client, spool: Spool
) -> None:
    _mixed(spool)
    for d in (0.1, 0.2, 0.4, 3.0):
        finished_job(spool, Status.COMPLETED, duration=d)
    data = client.get("/api/overview").json()
    assert data["counts"] == {
        "pending": 1,
        "running": 0,
        "completed": 5,
        "failed": 1,
        "cancelled": 1,
    }
    assert len(data["per_minute"]) == 60 and len(data["per_hour"]) == 24
    assert sum(b["completed"] for b in data["per_minute"]) == 5
    assert sum(b["failed"] for b in data["per_hour"]) == 1
    assert data["success_rate"]["last_hour"] == pytest.approx(5 / 6)
    assert data["success_rate"]["all"] == pytest.approx(5 / 6)
    sample = next(j for j in data["jobs"] if j["name"] == "SampleJob.process")
    assert sample["completed"] == 5 and sample["cancelled"] == 1
    assert sample["p50"] == pytest.approx(0.25, rel=0.06)
    assert sample["p95"] == pytest.approx(3.0, rel=0.06)
    assert data["oldest_pending"]["age_seconds"] >= 0
    assert data["index"]["ready"] is True
    assert data["runners"] == []


def test_metrics_are_prometheus_text(client: Client, spool: Spool) -> None:
    _mixed(spool)
    finished_job(spool, Status.COMPLETED, duration=0.003)
    res = client.get("/metrics")
    assert res.status == 200
    assert res.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    samples: dict[str, float] = {}
    for line in res.text.splitlines():
        if line.startswith("#"):
            assert re.fullmatch(r"# (HELP|TYPE) jobspool_\w+ .+", line), line
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    assert samples['jobspool_jobs{status="completed"}'] == 2
    assert samples['jobspool_jobs{status="pending"}'] == 1
    assert samples["jobspool_oldest_pending_age_seconds"] >= 0
    assert samples['jobspool_runners{state="alive"}'] == 0
    assert samples['jobspool_attempts_total{outcome="succeeded"}'] == 2
    assert samples['jobspool_attempts_total{outcome="failed"}'] == 1
    bucket = 'jobspool_job_duration_seconds_bucket{job="SampleJob.process",le="%s"}'
    assert samples[bucket % "0.004"] == 1
    assert samples[bucket % "+Inf"] == 2
    assert samples['jobspool_job_duration_seconds_count{job="SampleJob.process"}'] == 2
    edges = [v for k, v in samples.items() if k.startswith("jobspool_job_duration_seconds_bucket")]
    assert edges == sorted(edges)


# ------------------------------------------------------------------ logs


def test_log_api_reads_by_offset_and_tails(client: Client, spool: Spool) -> None:
    ids = _mixed(spool)
    job_id = ids["pending"]
    path = spool.job_log_path(job_id)
    empty = client.get(f"/api/jobs/{job_id}/log?offset=0").json()
    assert empty["exists"] is False and empty["active"] is True
    path.write_bytes(b"line one\nline two\n")
    first = client.get(f"/api/jobs/{job_id}/log?offset=0").json()
    assert first["text"] == "line one\nline two\n" and first["next_offset"] == 18
    with path.open("ab") as fh:
        fh.write("caf\u00e9 ".encode() + b"\xe2\x82")  # the euro sign, cut in half
    second = client.get(f"/api/jobs/{job_id}/log?offset=18").json()
    assert second["text"] == "caf\u00e9 " and second["next_offset"] == 18 + 6
    with path.open("ab") as fh:
        fh.write(b"\xac done\n")
    third = client.get(f"/api/jobs/{job_id}/log?offset={second['next_offset']}").json()
    assert third["text"] == "\u20ac done\n"
    path.write_bytes(b"new\n")
    reset = client.get(f"/api/jobs/{job_id}/log?offset=500").json()
    assert reset["reset"] is True and reset["text"] == "new\n"
    raw = client.get(f"/jobs/{job_id}/log")
    assert raw.status == 200 and raw.body == b"new\n"
    assert raw.header("Content-Type") == "text/plain; charset=utf-8"
    assert client.get(f"/api/jobs/{job_id}/log?offset=-1").status == 400
    assert client.get(f"/api/jobs/{job_id}/log?offset=abc").status == 400


def test_job_page_shows_the_tail_of_a_big_log(client: Client, spool: Spool) -> None:
    ids = _mixed(spool)
    path = spool.job_log_path(ids["completed"])
    path.write_bytes(b"".join(f"line {i:06d}\n".encode() for i in range(20_000)))
    page = client.get(f"/jobs/{ids['completed']}").text
    assert "line 019999" in page and "line 000000" not in page
    assert "Showing the last 64 KB" in page
    assert 'data-follow="0"' in page
    match = re.search(r'data-offset="(\d+)"', page)
    assert match and int(match.group(1)) == path.stat().st_size


def test_a_log_that_is_a_symlink_is_not_followed(
    client: Client, spool: Spool, env: SpoolEnv
) -> None:
    ids = _mixed(spool)
    secret = env.root / "secret.txt"
    secret.write_text("top secret")
    spool.job_log_path(ids["completed"]).symlink_to(secret)
    assert "top secret" not in client.get(f"/jobs/{ids['completed']}").text
    assert client.get(f"/api/jobs/{ids['completed']}/log?offset=0").json()["exists"] is False
    assert b"top secret" not in client.get(f"/jobs/{ids['completed']}/log").body


# ------------------------------------------------------------------ errors


def test_bad_job_ids_are_404_before_any_file_access(client: Client, spool: Spool) -> None:
    _mixed(spool)
    attempts = [
        "..",
        "%2e%2e",
        "%2E%2E",
        ".hidden",
        "a%00b",
        "a..b",
        "%00",
        "x" * 101,
        "..%2f..%2fallowed_jobs.yaml",
        "%2e%2e%2fpending",
    ]
    for bad in attempts:
        for template in (
            "/jobs/{}",
            "/api/jobs/{}",
            "/api/jobs/{}/log",
            "/partials/job/{}",
            "/jobs/{}/log",
        ):
            res = client.get(template.format(bad))
            assert res.status == 404, (template, bad)
        res = client.form(f"/jobs/{bad}/retry")
        assert res.status == 404, bad
    assert client.get("/jobs/../allowed_jobs.yaml", raw_path=True).status == 404
    api = client.get("/api/jobs/%2e%2e")
    assert api.json() == {"error": "no such job", "status": 404}


def test_get_on_an_action_route_is_405(client: Client, spool: Spool) -> None:
    ids = _mixed(spool)
    for route in ACTION_ROUTES:
        res = client.get(route.format(id=ids["failed"]))
        assert res.status == 405, route
        assert "POST" in (res.header("Allow") or "")
    assert spool_of_status(spool, ids["failed"]) == "failed"


def spool_of_status(spool: Spool, job_id: str) -> str | None:
    where = spool.locate(job_id)
    return where[0].value if where else None


def test_unknown_routes_and_static_files(client: Client) -> None:
    assert client.get("/nope").status == 404
    assert client.get("/api/nope").json()["status"] == 404
    js = client.get("/static/app.js")
    assert js.status == 200 and js.header("Content-Type") == "text/javascript; charset=utf-8"
    etag = js.header("ETag") or ""
    assert client.get("/static/app.js", headers={"If-None-Match": etag}).status == 304
    assert client.get("/static/app.css").status == 200
    assert client.get("/static/favicon.svg").header("Content-Type") == "image/svg+xml"
    for bad in ("../app.py", "..%2fapp.py", "nope.js", "%2e%2e"):
        assert client.get(f"/static/{bad}").status == 404, bad
    assert client.get("/favicon.ico").status == 301
    assert client.get("/login").status == 303, "no token: nothing to log in to"


def test_oversized_bodies_are_413(client: Client) -> None:
    res = client.post("/api/jobs", body=b"x", headers={"Content-Length": str(50 * 2**20)})
    assert res.status == 413


def test_index_thread_mode_serves_and_stops(env: SpoolEnv) -> None:
    spool = spool_of(env)
    finished_job(spool, Status.COMPLETED)
    from jobspool.config import load_config
    from jobspool.dashboard.state import Dashboard

    with Dashboard(load_config(env.config), refresh_seconds=0.05) as dash:
        client = client_for(dash)
        assert client.get("/api/overview").json()["counts"]["completed"] == 1
        finished_job(spool, Status.FAILED)
        deadline = time.monotonic() + 10
        while client.get("/api/overview").json()["counts"]["failed"] != 1:
            assert time.monotonic() < deadline, "the index thread never saw the new file"
            time.sleep(0.05)
        assert json.loads(client.get("/api/jobs?status=failed").body)["total"] == 1
