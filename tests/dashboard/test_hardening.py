"""The dashboard against hostile values and callers: rendering cost, redirects,
brute force, revoked sessions, odd numbers and the server's own error pages.

Each test plays the attack through real job files, the WSGI app (in
process) or the real waitress server, and checks what comes back.
"""

from __future__ import annotations

import html
import http.client
import json
import re
import socket
import tracemalloc
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Page, Route

from jobspool.dashboard import present
from jobspool.dashboard.security import CSP, HEADERS, MAX_REVOKED, SESSION_COOKIE, Guard
from jobspool.dashboard.state import Dashboard
from jobspool.dashboard.throttle import (
    FORGET_SECONDS,
    FREE_FAILURES,
    MAX_WAIT_SECONDS,
    Throttle,
)
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv
from tests.dashboard.support import Client, client_for, finished_job, live_server, make_dashboard

CUT_NOTE = "\n... (cut; the full value is in the API)"


def _nested(depth: int, inner: Any) -> Any:
    value = inner
    for _ in range(depth):
        value = [value]
    return value


def _shown(page: str, block: str) -> str:
    found = re.search(rf'<pre class="json" id="{block}">(.*?)</pre>', page, re.S)
    assert found, f"no {block} block on the page"
    return html.unescape(found.group(1))


# ------------------------------------------------------------------ F10: rendering


def _hostile_params() -> list[Any]:
    """About 1 MB of JSON: 50 levels deep, then 145,000 numbers 19 levels down."""
    return [_nested(50, ["bottom"]), _nested(18, list(range(100_000, 245_000)))]


def test_a_huge_nested_param_renders_within_the_cap(
    env: SpoolEnv, client: Client, spool: Spool
) -> None:
    job_id = "20300101-000000-000000-00000f10"
    doc = {"job": "SampleJob", "method": "process", "params": _hostile_params()}
    data = json.dumps(doc, separators=(",", ":"))
    assert 900_000 < len(data) < 1024 * 1024
    env.drop(f"{job_id}.json", data)
    res = client.get(f"/jobs/{job_id}")
    assert res.status == 200
    shown = _shown(res.text, "params")
    assert shown.endswith(CUT_NOTE)
    assert len(shown) <= present.DISPLAY_CAP + len(CUT_NOTE)
    # Depth is bounded too: the levels past the limit are one marker.
    assert "[...]" in shown
    deepest = max(len(line) - len(line.lstrip(" ")) for line in shown.splitlines())
    assert deepest <= 2 * present.MAX_SHOWN_DEPTH
    assert "bottom" not in shown
    assert "100000," in shown and "244999" not in shown
    # The API still has the whole value.
    assert client.get(f"/api/jobs/{job_id}").json()["params"] == doc["params"]


def test_rendering_stops_when_the_cap_is_reached() -> None:
    """The work done is bounded by the cap, not by the size of the value."""
    params = _hostile_params()
    tracemalloc.start()
    try:
        shown = present.pretty_json(params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"rendering allocated {peak} bytes at its peak"
    rendered = present.render_json(params)
    assert shown == rendered.text + CUT_NOTE
    assert rendered.cut
    assert len(rendered.text) == present.DISPLAY_CAP
    # Every node shown costs at least a line break, its indent and one character.
    assert rendered.nodes <= present.DISPLAY_CAP // 3


def test_long_strings_and_keys_are_cut_without_being_encoded_whole() -> None:
    big = "x" * 5_000_000
    rendered = present.render_json({big: big, "after": 1})
    assert rendered.cut and rendered.nodes == 1
    assert rendered.text == '{\n  "' + "x" * (present.DISPLAY_CAP - 5)


def test_ordinary_values_render_as_indented_json() -> None:
    values: list[Any] = [
        None,
        True,
        0,
        -7,
        2.5,
        1e300,
        'text with "quotes", \\ and \n \u2028 é 😀',
        [],
        {},
        [[], {}, [[]]],
        {"a": [1, {"b": None, "c": [True, False]}], "d": "e", "": {}},
        list(range(30)),
        _nested(present.MAX_SHOWN_DEPTH - 2, {"k": [1, 2]}),
    ]
    for value in values:
        expected = json.dumps(value, indent=2, ensure_ascii=False)
        rendered = present.render_json(value)
        assert (rendered.text, rendered.cut) == (expected, False), value
        assert present.pretty_json(value) == expected


# ------------------------------------------------------------------ F13: login redirect

TOKEN = "correct-horse-battery-staple-42"
OFF_SITE = [
    "/\t/evil.example/",
    "/\n/evil.example/",
    "/\r/evil.example/",
    "/\\evil.example/",
    "\t//evil.example/",
    " //evil.example/",
    "/\x00",
    "/\x0b/evil.example/",
    "/\u3000/evil.example/",
    "https:evil.example",
    "//evil.example/",
]


@pytest.fixture
def locked(env: SpoolEnv) -> Client:
    return client_for(make_dashboard(env, token=TOKEN))


def _hidden_next(page: str) -> str:
    found = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page)
    assert found, "the login form has no next field"
    return html.unescape(found.group(1))


def test_login_only_redirects_to_a_path_on_this_site(locked: Client) -> None:
    """F13: a tab or NUL in ``next`` neither leaves the site nor breaks the login."""
    for target in OFF_SITE:
        form = locked.get("/login?" + urlencode({"next": target}))
        assert form.status == 200, repr(target)
        assert _hidden_next(form.text) == "/", repr(target)
        locked.cookies.pop(SESSION_COOKIE, None)
        res = locked.form("/login", {"token": TOKEN, "next": target})
        assert res.status == 303, repr(target)
        assert res.header("Location") == "http://127.0.0.1:8080/", repr(target)
    for target in ("/jobs?status=failed&q=a%20b", "/jobs/20300101-000000-000000-0000beef"):
        locked.cookies.pop(SESSION_COOKIE, None)
        res = locked.form("/login", {"token": TOKEN, "next": target})
        assert res.header("Location") == f"http://127.0.0.1:8080{target}"


def test_a_browser_logging_in_stays_on_the_dashboard(env: SpoolEnv, page: Page) -> None:
    """F13 in Chromium: the browser itself drops the tab; it must not reach another host."""
    with live_server(env, token=TOKEN) as server:
        home = urlsplit(server.url).netloc
        elsewhere: list[str] = []

        def only_home(route: Route) -> None:
            if urlsplit(route.request.url).netloc == home:
                route.continue_()
            else:  # stands in for the other site, so the navigation ends either way
                elsewhere.append(route.request.url)
                route.fulfill(status=200, content_type="text/html", body="<h1>Elsewhere</h1>")

        page.route("**/*", only_home)
        page.goto(server.url + "login?next=/%09/evil.example/")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")  # waits for the navigation it starts
        page.wait_for_load_state()
        # Before the fix the form's CSP (form-action 'self') blocked the
        # redirect off site, so the login silently went nowhere.
        assert page.url == server.url
        assert elsewhere == []
        assert page.locator("h1").first.inner_text() == "Overview"


# ------------------------------------------------------------------ F15: numbers


def test_submit_refuses_non_finite_numbers(client: Client, spool: Spool) -> None:
    """F15: ``params: [1e400]`` was stored as null; now it is a 400 naming the param."""
    csrf = client.csrf()
    for body in (
        b'{"job": "SampleJob", "method": "process", "params": [1, 1e400]}',
        b'{"job": "SampleJob", "method": "process", "params": {"a": [NaN]}}',
    ):
        res = client.post(
            "/api/jobs",
            body=body,
            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
        )
        assert res.status == 400, res.text
        assert "finite" in res.json()["fields"]["params"]
    form = client.form("/submit", {"job": "SampleJob", "method": "process", "params": "[-1e999]"})
    assert form.status == 400 and "params[0] is not a finite number" in html.unescape(form.text)
    assert list(spool.names(Status.PENDING)) == []


def test_bulk_retry_limit_must_be_a_whole_number(client: Client, spool: Spool) -> None:
    """F15: ``limit: 1e400`` answered 500; every bad limit is a 400 that says why."""
    job_id = finished_job(spool, Status.FAILED)
    csrf = client.csrf()
    for raw in (b"1e400", b"-1e400", b"NaN", b'"many"', b"2.5", b"true", b"0", b"-3", b"[5]"):
        res = client.post(
            "/api/actions/retry-failed",
            body=b'{"limit": ' + raw + b"}",
            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
        )
        assert res.status == 400, (raw, res.status, res.text)
        assert res.json()["error"] == "limit must be a whole number from 1 to 5000", raw
    form = client.form("/actions/retry-failed", {"limit": "1e400"})
    assert form.status == 400 and "limit must be a whole number" in form.text
    assert spool.get(job_id).status == "failed"
    done = client.api_post("/api/actions/retry-failed", {"limit": 1})
    assert done.status == 200 and done.json()["retried"] == 1


# ------------------------------------------------------------------ F15: the server's own errors


def _raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str]]:
    """Send bytes as they are (no client library would send them) and read the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def test_the_servers_own_error_answers_carry_the_security_headers(env: SpoolEnv) -> None:
    """F15: waitress answers malformed requests itself; they carry the app's headers too."""
    malformed = [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]
    with live_server(env) as server:
        for request in malformed:
            status, headers = _raw_exchange(server.url, request)
            assert status == 400, request
            for name, value in (*HEADERS, ("Cache-Control", "no-store")):
                assert headers.get(name.lower()) == value, (request, name, headers)
        ok_status, ok_headers = _raw_exchange(
            server.url,
            b"GET /static/app.css HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        assert ok_status == 200 and ok_headers["content-security-policy"] == CSP


# ------------------------------------------------------------------ F15: brute force


def _frozen(dash: Dashboard) -> list[float]:
    """Stop the dashboard's throttle clock, so a wait lasts until the test moves it."""
    now = [0.0]
    dash.guard.clock = lambda: now[0]
    return now


def test_wrong_logins_from_one_address_are_slowed_down(env: SpoolEnv) -> None:
    """F15: 300 wrong tokens in a row; after a few, the address must wait (429)."""
    dash = make_dashboard(env, token=TOKEN)
    clock = _frozen(dash)
    client = client_for(dash)
    statuses = []
    for n in range(300):
        res = client.form("/login", {"token": f"wrong-token-number-{n:04d}"})
        statuses.append(res.status)
        if res.status == 429:
            assert res.header("Retry-After") == "1"
            assert "Too many failed attempts" in html.unescape(res.text)
    assert statuses[:FREE_FAILURES] == [401] * FREE_FAILURES
    assert set(statuses[FREE_FAILURES:]) == {429}
    # While it waits, even the right token is refused: guessing gains nothing.
    res = client.form("/login", {"token": TOKEN})
    assert res.status == 429 and SESSION_COOKIE not in client.cookies
    clock[0] = 1.0
    assert client.form("/login", {"token": TOKEN}).status == 303
    assert client.get("/api/overview").status == 200


def test_wrong_bearer_tokens_over_http_are_slowed_down(env: SpoolEnv) -> None:
    with live_server(env, token=TOKEN) as server:
        clock = _frozen(server.dashboard)
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
        try:

            def call(token: str) -> http.client.HTTPResponse:
                conn.request("GET", "/api/overview", headers={"Authorization": f"Bearer {token}"})
                res = conn.getresponse()
                res.read()
                return res

            answers = [call(f"guess-{n:05d}-guess-guess") for n in range(300)]
            codes = [a.status for a in answers]
            assert codes[:FREE_FAILURES] == [401] * FREE_FAILURES
            assert set(codes[FREE_FAILURES:]) == {429}
            limited = answers[-1]
            assert limited.getheader("Retry-After") == "1"
            assert limited.getheader("Content-Security-Policy") == CSP
            assert call(TOKEN).status == 429
            clock[0] = 1.0
            assert call(TOKEN).status == 200
        finally:
            conn.close()


def test_the_throttle_backs_off_forgets_and_stays_bounded() -> None:
    throttle = Throttle(max_addresses=100)
    for _ in range(FREE_FAILURES):
        assert throttle.wait("10.0.0.1", 0.0) == 0
        throttle.failed("10.0.0.1", 0.0)
    assert throttle.wait("10.0.0.1", 0.0) == 1
    assert throttle.wait("10.0.0.2", 0.0) == 0, "other addresses are not affected"
    # Each failure after the free ones doubles the wait, up to the cap.
    waits = []
    now = 0.0
    for _ in range(12):
        now += throttle.wait("10.0.0.1", now)
        throttle.failed("10.0.0.1", now)
        waits.append(throttle.wait("10.0.0.1", now))
    assert waits[:5] == [2, 4, 8, 16, 32]
    assert max(waits) == waits[-1] == MAX_WAIT_SECONDS
    throttle.succeeded("10.0.0.1")
    assert throttle.wait("10.0.0.1", now) == 0
    # One IPv6 host holds a whole /64: its addresses share one count.
    for n in range(FREE_FAILURES):
        throttle.failed(f"2001:db8:1:2::{n + 1:x}", 0.0)
    assert throttle.wait("2001:db8:1:2:ffff::9", 0.0) == 1
    assert throttle.wait("2001:db8:1:3::1", 0.0) == 0
    # Memory stays bounded however many addresses fail.
    for n in range(10_000):
        throttle.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", 1.0)
    assert len(throttle) <= 100
    # An address quiet for long enough is forgotten: its count starts afresh.
    for _ in range(FREE_FAILURES):
        throttle.failed("192.0.2.8", 0.0)
    later = FORGET_SECONDS + 1
    throttle.failed("192.0.2.8", later)
    assert throttle.wait("192.0.2.8", later) == 0


# ------------------------------------------------------------------ F15: logout


def test_logout_revokes_the_session_on_the_server(locked: Client) -> None:
    """F15: a session cookie kept from before a logout no longer works."""
    assert locked.form("/login", {"token": TOKEN}).status == 303
    stolen = locked.cookies[SESSION_COOKIE]
    assert locked.get("/api/overview").status == 200
    assert locked.form("/logout").status == 303
    assert SESSION_COOKIE not in locked.cookies
    replay = Client(locked.app, cookies={SESSION_COOKIE: stolen})
    assert replay.get("/api/overview").status == 401
    assert replay.get("/jobs").status == 303  # to the login page
    # Logging in again gives a working session.
    assert locked.form("/login", {"token": TOKEN}).status == 303
    assert locked.get("/api/overview").status == 200


def test_revocations_stay_bounded() -> None:
    guard = Guard(TOKEN)
    start = 1_000_000.0
    sessions = [guard.new_session(start + n) for n in range(MAX_REVOKED + 50)]
    for n, value in enumerate(sessions):
        guard.revoke(value, start + n)
    assert guard.revoked_count() <= MAX_REVOKED
    now = start + len(sessions)
    assert not any(guard.session_valid(value, now) for value in sessions)
    assert guard.session_valid(guard.new_session(now + 1), now + 1)
