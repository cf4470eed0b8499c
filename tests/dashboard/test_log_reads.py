"""The dashboard reads job logs and progress without following links (F7).

Job code writes ``logs/jobs/``: a FIFO at a progress name hung a dashboard
thread on ``/api/jobs/<id>``; a hard link or a swapped directory served a
file from outside the spool; the raw log was served whole, however large.
The pages are asked of the real server or the app itself, over real files.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from jobspool import progress
from jobspool.model import Job
from jobspool.names import RunningName
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv
from tests.dashboard.support import Client, LiveServer, client_for, finished_job, make_dashboard

SECRET = "root:the-secret-line\n"


def running_job(spool: Spool) -> str:
    """A job claimed by a runner (none runs here: the claim is the status)."""
    job_id = spool.submit(Job(job="SampleJob", method="process", params=["x"]))
    assert spool.claim(f"{job_id}.json", RunningName(job_id, "runner-a", 1)) is not None
    return job_id


def test_a_fifo_at_a_progress_name_does_not_hang_the_job_api(
    spool: Spool, server: LiveServer
) -> None:
    job_id = running_job(spool)
    fifo = progress.progress_path(spool, job_id)
    os.mkfifo(fifo)
    try:
        with urllib.request.urlopen(f"{server.url}/api/jobs/{job_id}", timeout=15) as answer:
            data = json.loads(answer.read())
    except (TimeoutError, urllib.error.URLError) as exc:
        pytest.fail(f"/api/jobs/{job_id} did not answer: {exc}")
    finally:
        # Releases a reader stuck on the FIFO (there is none once fixed).
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert data["status"] == "running"
    assert data["progress"] is None or data["progress"].get("message") is None


def test_a_progress_link_is_not_followed(env: SpoolEnv, spool: Spool, tmp_path: Path) -> None:
    job_id = running_job(spool)
    outside = tmp_path / "progress.json"
    outside.write_text(json.dumps({"fraction": 0.5, "message": "from outside the spool"}))
    progress.progress_path(spool, job_id).symlink_to(outside)
    answer = client_for(make_dashboard(env)).get(f"/api/jobs/{job_id}")
    assert answer.status == 200
    assert "from outside the spool" not in answer.text


def _secret_served(client: Client, job_id: str) -> list[str]:
    paths = (f"/jobs/{job_id}", f"/jobs/{job_id}/log", f"/api/jobs/{job_id}/log")
    return [p for p in paths if "the-secret-line" in client.get(p).text]


def test_a_log_with_another_name_is_not_served(env: SpoolEnv, spool: Spool, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    job_id = finished_job(spool, Status.COMPLETED)
    os.link(secret, spool.job_log_file(job_id))
    client = client_for(make_dashboard(env))
    assert _secret_served(client, job_id) == []
    assert client.get(f"/api/jobs/{job_id}/log").json()["exists"] is False


def test_a_swapped_log_directory_is_not_followed(
    env: SpoolEnv, spool: Spool, tmp_path: Path
) -> None:
    job_id = finished_job(spool, Status.COMPLETED)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{job_id}.log").write_text(SECRET)
    jobs_dir = spool.log_dir / "jobs"
    os.rename(jobs_dir, tmp_path / "jobs-aside")
    os.symlink(elsewhere, jobs_dir)
    client = client_for(make_dashboard(env))
    assert _secret_served(client, job_id) == []
    assert client.get(f"/api/jobs/{job_id}").json()["log"]["size"] is None


def test_the_raw_log_is_served_up_to_the_log_cap(env: SpoolEnv, spool: Spool) -> None:
    env.write_config(logs={"job_log_max_bytes": 4096})
    job_id = finished_job(spool, Status.COMPLETED)
    with open(spool.job_log_file(job_id), "wb") as fh:
        fh.write(b"first line\n")
        fh.truncate(1 << 30)  # a gigabyte, in holes
    answer = client_for(make_dashboard(env)).get(f"/jobs/{job_id}/log")
    assert answer.status == 200
    assert answer.body.startswith(b"first line\n")
    assert len(answer.body) < 4096 + 200
    assert b"only its first 4096 bytes are shown" in answer.body
