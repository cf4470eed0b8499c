"""The real server (waitress) and the ``dashboard`` / ``up`` commands, as processes."""

from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobspool.dashboard.app import create_app
from jobspool.dashboard.commands import register
from jobspool.dashboard.security import TOKEN_ENV
from jobspool.dashboard.server import DashboardServer
from jobspool.model import Job
from jobspool.states import Status
from tests.conftest import SpoolEnv, wait_until
from tests.dashboard.support import make_dashboard, spool_of

URL = re.compile(r"http://([\d.]+):(\d+)/")
TOKEN = "a-long-enough-token-for-tests"


def fetch(
    host: str, port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def test_register_adds_both_commands() -> None:
    parser = argparse.ArgumentParser(prog="jobspool")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dashboard", "--port", "0", "--host", "127.0.0.1"])
    assert args.port == 0 and callable(args.func)
    up = parser.parse_args(["up", "--spool", "s", "--workers", "3"])
    assert up.workers == 3 and up.spool == "s" and up.func.__name__ == "cmd_up"


def test_the_server_answers_concurrent_requests_and_stops_cleanly(env: SpoolEnv) -> None:
    dash = make_dashboard(env)
    server = DashboardServer(create_app(dash), "127.0.0.1", 0, threads=4)
    server.start_thread()
    try:
        codes: list[int] = []

        def hit() -> None:
            for _ in range(5):
                codes.append(fetch("127.0.0.1", server.port, "/api/overview")[0])

        threads = [threading.Thread(target=hit) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert codes == [200] * 30
        status, body = fetch("127.0.0.1", server.port, "/")
        assert status == 200 and b"Overview" in body
        assert server.url == f"http://127.0.0.1:{server.port}/"
    finally:
        server.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("waitress")]


@contextmanager
def command(env: SpoolEnv, *args: str, extra_env: dict[str, str] | None = None) -> Iterator[Any]:
    environ = {**env.environ(), **(extra_env or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobspool.dashboard",
            *args,
            "--config",
            str(env.config),
            "--port",
            "0",
        ],
        cwd=env.root,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _address(proc: Any) -> tuple[str, int]:
    line = proc.stdout.readline()
    found = URL.search(line)
    assert found, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.poll() else ''}"
    return found.group(1), int(found.group(2))


def test_up_runs_a_runner_and_the_dashboard_and_ctrl_c_stops_both(env: SpoolEnv) -> None:
    spool = spool_of(env)
    marker = env.root / "ran"
    job_id = spool.submit(Job(job="Marker", method="touch", params=[str(marker)]), by="t", via="t")
    with command(env, "up", "--quiet") as proc:
        host, port = _address(proc)
        wait_until(marker.exists, 20, "the runner of `up` to run the job")
        wait_until(
            lambda: spool.locate(job_id) and spool.locate(job_id)[0] is Status.COMPLETED,  # type: ignore[index]
            20,
            "the job to complete",
        )
        status, body = fetch(host, port, f"/api/jobs/{job_id}")
        assert status == 200 and json.loads(body)["status"] == "completed"
        runners = json.loads(fetch(host, port, "/api/runners")[1])["runners"]
        assert len(runners) == 1 and not runners[0]["stale"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        out = proc.stdout.read()
        assert "jobspool up: stopped" in out
    assert not list((env.spool / "runners").glob("*.json")), "the runner unregistered"


def test_dashboard_command_with_a_token_from_the_environment(env: SpoolEnv) -> None:
    with command(env, "dashboard", extra_env={TOKEN_ENV: TOKEN}) as proc:
        host, port = _address(proc)
        assert fetch(host, port, "/api/overview")[0] == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, body = fetch(host, port, "/api/overview", auth)
        assert status == 200 and json.loads(body)["counts"]["pending"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert "stopped" in proc.stdout.read()


def test_a_public_address_without_a_token_is_refused(env: SpoolEnv) -> None:
    with command(env, "dashboard", "--host", "0.0.0.0") as proc:
        assert proc.wait(20) == 2
        assert "refusing to listen on 0.0.0.0 without a token" in proc.stderr.read()


def test_a_busy_port_is_a_clear_error(env: SpoolEnv) -> None:
    dash = make_dashboard(env)
    server = DashboardServer(create_app(dash), "127.0.0.1", 0)
    try:
        proc = subprocess.run(  # noqa: PLW1510 - the exit status is what is tested
            [
                sys.executable,
                "-m",
                "jobspool.dashboard",
                "dashboard",
                "--config",
                str(env.config),
                "--port",
                str(server.port),
            ],
            cwd=env.root,
            env=env.environ(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 2
        assert "cannot listen on 127.0.0.1" in proc.stderr
    finally:
        server.stop()
