"""Helpers for the dashboard tests: an in-process WSGI client, spool data, a live server.

The fixtures built on these are in this folder's conftest.py; this module
holds what a test imports by name. :class:`Client` calls the WSGI
application directly (no socket, no thread): it builds the environ a server
would (PATH_INFO percent-decoded, as bytes seen as latin-1), keeps cookies
like a browser, and sends Origin on writes like a browser does.
:class:`LiveServer` runs the real waitress server on 127.0.0.1 with an
OS-chosen port, for the browser tests, which drive the Chromium of
bench/browser.py (the screenshots use the same one).
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode, urlsplit

import pytest
from playwright.sync_api import Page, sync_playwright

from bench.browser import CHROMIUM, launch
from jobspool.config import load_config
from jobspool.dashboard.app import create_app
from jobspool.dashboard.security import CSRF_COOKIE, WsgiApp
from jobspool.dashboard.server import DashboardServer
from jobspool.dashboard.state import Dashboard
from jobspool.model import Attempt, ErrorInfo, Job, Outcome, utcnow
from jobspool.names import RunningName
from jobspool.spool import Spool
from jobspool.states import Status
from jobspool.submit import open_spool
from tests.conftest import SpoolEnv

HOST = "127.0.0.1:8080"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def headers_named(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    """A browser-like WSGI client: cookies, Origin on writes, CSRF from pages."""

    app: WsgiApp
    host: str = HOST
    cookies: dict[str, str] = field(default_factory=dict)
    send_origin: bool = True

    def request(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, str] | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        raw_path: bool = False,
    ) -> Response:
        parts = urlsplit(path)
        payload = b""
        content_type = ""
        if data is not None:
            payload = urlencode(data).encode()
            content_type = "application/x-www-form-urlencoded"
        elif json_body is not None:
            payload = json.dumps(json_body).encode()
            content_type = "application/json"
        elif body is not None:
            payload = body
        path_info = parts.path if raw_path else unquote_to_bytes(parts.path).decode("latin-1")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path_info,
            "QUERY_STRING": parts.query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8080",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": self.host,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(payload),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(payload)),
        }
        if content_type:
            environ["CONTENT_TYPE"] = content_type
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.send_origin and method not in ("GET", "HEAD"):
            environ["HTTP_ORIGIN"] = f"http://{self.host}"
        for key, value in (headers or {}).items():
            name = key.upper().replace("-", "_")
            if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[name] = value
            else:
                environ[f"HTTP_{name}"] = value
        captured: dict[str, Any] = {}

        def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = int(status.split(maxsplit=1)[0])
            captured["headers"] = hdrs
            return lambda chunk: None

        result = self.app(environ, start_response)
        try:
            chunks = b"".join(_iterate(result))
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        response = Response(captured["status"], captured["headers"], chunks)
        self._keep_cookies(response)
        return response

    def _keep_cookies(self, response: Response) -> None:
        for line in response.headers_named("Set-Cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(line)
            for name, morsel in jar.items():
                expired = morsel["max-age"] == "0" or "1970" in morsel["expires"]
                if expired or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Response:
        return self.request("POST", path, **kw)

    def csrf(self) -> str:
        """The CSRF token a page would carry (from the login page when logged out)."""
        session = self.get("/api/session")
        if session.status == 200:
            token: str = session.json()["csrf"]
        else:
            token = csrf_from(self.get("/login").text)
        assert CSRF_COOKIE in self.cookies
        return token

    def form(self, path: str, fields: dict[str, str] | None = None) -> Response:
        """POST a form the way the page's own form would (with its CSRF token)."""
        data = {"csrf": self.csrf(), **(fields or {})}
        return self.post(path, data=data)

    def api_post(self, path: str, body: Any = None) -> Response:
        return self.post(path, json_body=body or {}, headers={"X-CSRF-Token": self.csrf()})


def _iterate(result: Iterable[bytes]) -> Iterator[bytes]:
    yield from result


# ------------------------------------------------------------------ spool data


def make_dashboard(env: SpoolEnv, **kw: Any) -> Dashboard:
    cfg = load_config(env.config)
    return Dashboard(cfg, background=False, **kw)


def client_for(dash: Dashboard, **kw: Any) -> Client:
    return Client(create_app(dash), **kw)


def spool_of(env: SpoolEnv) -> Spool:
    return open_spool(load_config(env.config))


def status_of(spool: Spool, job_id: str) -> str | None:
    where = spool.locate(job_id)
    return where[0].value if where else None


def finished_job(
    spool: Spool,
    status: Status,
    *,
    job: str = "SampleJob",
    method: str = "process",
    params: list[Any] | dict[str, Any] | None = None,
    error: ErrorInfo | None = None,
    result: Any = None,
    duration: float = 0.25,
    job_id: str | None = None,
) -> str:
    """A finished job made through the spool's own moves: submit, claim, publish."""
    record = Job(job=job, method=method, params=params if params is not None else ["x"], id=job_id)
    new_id = spool.submit(record, by="tests", via="tests")
    claim = RunningName(new_id, "test-runner", 1)
    running = spool.claim(f"{new_id}.json", claim)
    assert running is not None
    current = spool.read_job(running)
    now = utcnow()
    outcome = {
        Status.COMPLETED: Outcome.SUCCEEDED,
        Status.FAILED: Outcome.FAILED,
        Status.CANCELLED: Outcome.CANCELLED,
    }[status]
    attempt = Attempt(
        number=1,
        runner="test-runner",
        host="testhost",
        pid=4242,
        started_at=now,
        finished_at=now,
        duration_seconds=duration,
        outcome=outcome,
        exit_code=0 if status is Status.COMPLETED else 1,
        error=error,
    )
    done = current.model_copy(
        update={
            "id": new_id,
            "attempts": [attempt],
            "result": result,
            "error": error,
            "reason": None if status is Status.COMPLETED else "attempts exhausted",
        }
    )
    spool.move(running, Status.RUNNING, status, done)
    return new_id


def csrf_from(html: str) -> str:
    found = CSRF_META.search(html)
    assert found, "page has no CSRF token"
    return found.group(1)


# ------------------------------------------------------------------ live server


class LiveServer:
    """The real dashboard (waitress, background index) on 127.0.0.1, OS-chosen port."""

    def __init__(self, env: SpoolEnv, token: str | None = None) -> None:
        cfg = load_config(env.config)
        self.dashboard = Dashboard(cfg, token=token, refresh_seconds=0.2)
        self.dashboard.start()
        self.server = DashboardServer(create_app(self.dashboard), "127.0.0.1", 0, threads=4)
        self.server.start_thread()

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()
        self.dashboard.stop()


@contextmanager
def live_server(env: SpoolEnv, token: str | None = None) -> Iterator[LiveServer]:
    server = LiveServer(env, token)
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------ browser


@contextmanager
def browser_page(viewport: tuple[int, int] = (1280, 900)) -> Iterator[Page]:
    """A fresh headless Chromium page; fails (never skips) when Chromium is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            page = context.new_page()
            page.set_default_timeout(20_000)
            yield page
            context.close()
        finally:
            browser.close()


def repo_path(*parts: str) -> Path:
    return Path(__file__).resolve().parents[2].joinpath(*parts)


# ------------------------------------------------------------------ every kind of job

LONG_ERROR = (
    "the upstream service answered 503 Service Unavailable three times in a row while "
    "exporting the quarterly report; see https://status.example.com/incidents/"
    "2026-12-07/export-service-degraded-performance-in-eu-west-region for details"
)


def _claimed(spool: Spool, record: Job, runner: str = "test-runner") -> tuple[str, str]:
    """Submit record and claim it as ``runner`` would: (id, running path)."""
    job_id = spool.submit(record, by="tests", via="tests")
    running = spool.claim(f"{job_id}.json", RunningName(job_id, runner, 1))
    assert running is not None
    return job_id, running


def _attempt(outcome: Outcome, error: ErrorInfo | None, seconds: float = 0.5) -> Attempt:
    now = utcnow()
    return Attempt(
        number=1,
        runner="test-runner",
        host="testhost",
        pid=4242,
        started_at=now,
        finished_at=now,
        duration_seconds=seconds,
        outcome=outcome,
        exit_code=None if outcome is Outcome.REJECTED else 1,
        error=error,
    )


def retrying_job(spool: Spool, in_seconds: float = 300.0) -> str:
    """A pending job whose first attempt failed, waiting for its next attempt."""
    job_id, running = _claimed(spool, Job(job="Flaky", method="run", params=["/tmp/counter", 3]))
    error = ErrorInfo(type="RuntimeError", message="planned failure 1 of 3")
    current = spool.read_job(running)
    waiting = current.model_copy(
        update={
            "id": job_id,
            "attempts": [_attempt(Outcome.FAILED, error)],
            "error": error,
            "next_attempt_at": utcnow() + timedelta(seconds=in_seconds),
        }
    )
    spool.move(running, Status.RUNNING, Status.PENDING, waiting)
    return job_id


def scheduled_job(spool: Spool, in_seconds: float = 7200.0) -> str:
    """A pending job its producer delayed (not_before ahead)."""
    record = Job(
        job="SampleJob",
        method="process",
        params=["later"],
        not_before=utcnow() + timedelta(seconds=in_seconds),
    )
    return spool.submit(record, by="tests", via="tests")


def rejected_job(spool: Spool) -> str:
    """A failed job the runner rejected for its params, as the finishing stage records it."""
    job_id, running = _claimed(spool, Job(job="Typed", method="add", params=["x"]))
    message = "param 'a' must be int, got str 'x'"
    error = ErrorInfo(type="InvalidParams", message=message)
    current = spool.read_job(running)
    done = current.model_copy(
        update={
            "id": job_id,
            "attempts": [_attempt(Outcome.REJECTED, error)],
            "error": error,
            "reason": f"rejected: {message}",
        }
    )
    spool.move(running, Status.RUNNING, Status.FAILED, done)
    return job_id


def every_kind_of_job(spool: Spool) -> dict[str, str]:
    """One job of each kind a page shows, by kind: pending (ready), scheduled,
    retrying, running (claimed, no runner), completed (with a log that has a
    very long line), failed (a long error), rejected (bad params), cancelled."""
    ids = {
        "pending": spool.submit(
            Job(job="SampleJob", method="process", params=["ready"]), by="tests", via="tests"
        ),
        "scheduled": scheduled_job(spool),
        "retrying": retrying_job(spool),
        "completed": finished_job(
            spool, Status.COMPLETED, params={"rows": list(range(40))}, result={"ok": True}
        ),
        "failed": finished_job(
            spool,
            Status.FAILED,
            job="Failing",
            method="bad",
            params=["x" * 300],
            error=ErrorInfo(type="UpstreamUnavailable", message=LONG_ERROR, traceback="T\n" * 5),
        ),
        "rejected": rejected_job(spool),
        "cancelled": finished_job(spool, Status.CANCELLED),
    }
    ids["running"] = _claimed(
        spool, Job(job="Sleeper", method="sleep", params=[60]), runner="gone-runner"
    )[0]
    log = spool.job_log_path(ids["completed"])
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("starting\n" + "a-very-long-token-without-spaces-" * 40 + "\ndone\n")
    return ids
