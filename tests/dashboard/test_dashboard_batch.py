"""POST /api/jobs/batch: the dashboard's batch submit, in process (no sockets)."""

from __future__ import annotations

from tests.conftest import SpoolEnv
from tests.dashboard.support import Client


def _adds(n: int) -> list[dict[str, object]]:
    return [{"job": "Typed", "method": "add", "params": [i, 1]} for i in range(n)]


def test_a_batch_is_queued_in_order(env: SpoolEnv, client: Client) -> None:
    res = client.api_post("/api/jobs/batch", {"jobs": _adds(5)})
    assert res.status == 201, res.text
    ids = res.json()["ids"]
    assert len(ids) == 5 and env.files("pending") == sorted(f"{i}.json" for i in ids)
    assert env.record("pending", ids[0])["history"][0]["via"] == "dashboard"


def test_a_bad_job_refuses_the_whole_batch(env: SpoolEnv, client: Client) -> None:
    jobs = _adds(4)
    jobs[2] = {"job": "Typed", "method": "add", "params": ["x"]}
    res = client.api_post("/api/jobs/batch", {"jobs": jobs})
    assert res.status == 400
    assert res.json()["error"].startswith("jobs[2]: ")
    assert env.files("pending") == []
    assert client.api_post("/api/jobs/batch", {"job": "Typed"}).status == 400
    twice = [{**j, "job_id": "same"} for j in _adds(2)]
    assert client.api_post("/api/jobs/batch", {"jobs": twice}).status == 409
    assert env.files("pending") == []


def test_a_batch_needs_the_csrf_token(env: SpoolEnv, client: Client) -> None:
    res = client.post("/api/jobs/batch", json_body={"jobs": _adds(1)})
    assert res.status == 403
    assert env.files("pending") == []
