"""Escaping, headers, CSRF, Origin, Host and token checks of the dashboard."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from jobspool.dashboard.security import (
    CSP,
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    TOKEN_ENV,
    Guard,
    SecurityConfigError,
    check_bind,
    is_loopback,
    load_token,
)
from jobspool.model import ErrorInfo, Job
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv
from tests.dashboard.support import Client, client_for, finished_job, make_dashboard

TOKEN = "correct-horse-battery-staple-42"
XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</pre><svg onload=alert(1)>",
    "javascript:alert(1)",
    "'; alert(1); '",
]


@pytest.fixture
def locked(env: SpoolEnv) -> Client:
    return client_for(make_dashboard(env, token=TOKEN))


# ------------------------------------------------------------------ escaping


def test_hostile_values_are_rendered_escaped_everywhere(
    client: Client, spool: Spool, env: SpoolEnv
) -> None:
    payload = " ".join(XSS)
    job_id = finished_job(
        spool,
        Status.FAILED,
        params={"note": payload},
        error=ErrorInfo(type="Boom<b>", message=payload, traceback=f"Traceback\n{payload}"),
    )
    spool.job_log_path(job_id).write_text(f"log says {payload}\n")
    pages = [
        f"/jobs/{job_id}",
        f"/partials/job/{job_id}",
        "/jobs",
        "/jobs?status=failed",
        f"/jobs?q={XSS[0]}",
        "/partials/jobs?q=%3Cscript%3E",
        "/",
        f"/submit?job={XSS[1]}",
    ]
    for path in pages:
        html = client.get(path).text
        for raw in ("<script>alert", "<img src=x", "<svg onload", "Boom<b>"):
            assert raw not in html, (path, raw)
    detail = client.get(f"/jobs/{job_id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert "&lt;/pre&gt;&lt;svg onload=alert(1)&gt;" in detail
    assert "Boom&lt;b&gt;" in detail
    assert "log says &lt;script&gt;" in detail
    searched = client.get("/jobs?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in searched
    assert client.get(f"/api/jobs/{job_id}").header("Content-Type") == "application/json"


def test_hostile_form_input_is_escaped_when_shown_back(client: Client) -> None:
    res = client.form(
        "/submit", {"job": "Typed", "method": "add", "params": XSS[0], "priority": XSS[1]}
    )
    assert res.status == 400
    assert "<script>alert" not in res.text and "<img src=x" not in res.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in res.text


# ------------------------------------------------------------------ headers


def test_every_response_carries_the_security_headers(client: Client, spool: Spool) -> None:
    job_id = finished_job(spool, Status.FAILED)
    responses = [
        client.get("/"),
        client.get("/jobs"),
        client.get(f"/jobs/{job_id}"),
        client.get("/api/overview"),
        client.get("/metrics"),
        client.get("/static/app.js"),
        client.get("/nope"),
        client.get("/api/nope"),
        client.get(f"/jobs/{job_id}/retry"),
        client.post(f"/jobs/{job_id}/retry", data={}),
        client.form(f"/jobs/{job_id}/retry"),
    ]
    for res in responses:
        assert res.header("Content-Security-Policy") == CSP
        assert res.header("X-Frame-Options") == "DENY"
        assert res.header("X-Content-Type-Options") == "nosniff"
        assert res.header("Referrer-Policy") == "same-origin"
        assert len(res.headers_named("Content-Security-Policy")) == 1
    assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert "unsafe-inline" not in CSP
    assert responses[0].header("Cache-Control") == "no-store"


def test_pages_have_no_inline_script_or_style(client: Client, spool: Spool) -> None:
    job_id = finished_job(spool, Status.COMPLETED)
    for path in ("/", "/jobs", f"/jobs/{job_id}", "/submit"):
        html = client.get(path).text
        assert "<script>" not in html and "<script " not in html.replace(
            '<script src="/static/app.js" defer></script>', ""
        )
        assert " style=" not in html and "<style" not in html
        assert " onclick=" not in html and " onload=" not in html


def test_cookies_are_http_only_and_same_site_strict(client: Client) -> None:
    res = client.get("/")
    cookie = SimpleCookie()
    cookie.load(res.header("Set-Cookie") or "")
    morsel = cookie[CSRF_COOKIE]
    assert morsel["httponly"] and morsel["samesite"].lower() == "strict" and morsel["path"] == "/"


# ------------------------------------------------------------------ csrf and origin


def test_writes_need_the_csrf_token(client: Client, spool: Spool) -> None:
    job_id = finished_job(spool, Status.FAILED)
    client.get("/")
    assert client.post(f"/jobs/{job_id}/retry", data={}).status == 403
    assert client.post(f"/jobs/{job_id}/retry", data={"csrf": "0" * 64}).status == 403
    assert client.post(f"/api/jobs/{job_id}/retry", json_body={}).status == 403
    stranger = Client(client.app)  # another browser: its own cookies
    foreign = stranger.csrf()
    assert client.post(f"/jobs/{job_id}/retry", data={"csrf": foreign}).status == 403
    fresh = Client(client.app)
    fresh.cookies = {}
    assert fresh.post(f"/jobs/{job_id}/retry", data={"csrf": client.csrf()}).status == 403
    assert spool.locate(job_id) is not None and spool.get(job_id).status == "failed"
    assert client.form(f"/jobs/{job_id}/retry").status == 303


def test_writes_from_another_origin_are_refused(client: Client, spool: Spool) -> None:
    job_id = finished_job(spool, Status.FAILED)
    token = client.csrf()
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "https://127.0.0.1:8080"},
        {"Referer": "http://evil.example/page"},
    ):
        client.send_origin = False
        res = client.post(f"/jobs/{job_id}/retry", data={"csrf": token}, headers=headers)
        assert res.status == 403, headers
    assert spool.get(job_id).status == "failed"
    same = client.post(
        f"/jobs/{job_id}/retry",
        data={"csrf": token},
        headers={"Referer": "http://127.0.0.1:8080/jobs"},
    )
    assert same.status == 303


def test_without_a_token_only_loopback_host_names_are_served(client: Client) -> None:
    assert client.get("/").status == 200
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "127.1.2.3:80"):
        client.host = host
        assert client.get("/api/overview").status == 200, host
    client.host = "rebind.evil.example:8080"
    res = client.get("/")
    assert res.status == 403 and "DNS rebinding" in res.text


# ------------------------------------------------------------------ token


def test_with_a_token_pages_redirect_to_login_and_api_says_401(locked: Client) -> None:
    res = locked.get("/jobs?status=failed")
    assert res.status == 303
    assert (res.header("Location") or "").endswith("/login?next=%2Fjobs%3Fstatus%3Dfailed")
    for path in ("/api/overview", "/api/jobs", "/metrics", "/partials/overview", "/partials/jobs"):
        assert locked.get(path).status == 401, "scripts and scrapers get 401, never a login page"
    api = locked.get("/api/overview")
    assert api.status == 401 and api.header("WWW-Authenticate") == 'Bearer realm="jobspool"'
    assert api.json()["status"] == 401
    assert locked.get("/static/app.css").status == 200
    assert locked.get("/login").status == 200
    assert locked.form("/api/jobs", {"job": "Typed"}).status == 401


def test_login_sets_a_strict_session_cookie_and_logout_clears_it(locked: Client) -> None:
    assert locked.form("/login", {"token": "wrong-token-wrong-token"}).status == 401
    assert SESSION_COOKIE not in locked.cookies
    res = locked.form("/login", {"token": TOKEN, "next": "/jobs"})
    assert res.status == 303 and (res.header("Location") or "").endswith("/jobs")
    cookie = SimpleCookie()
    for line in res.headers_named("Set-Cookie"):
        cookie.load(line)
    morsel = cookie[SESSION_COOKIE]
    assert morsel["httponly"] and morsel["samesite"].lower() == "strict"
    assert TOKEN not in morsel.value
    assert locked.get("/").status == 200
    assert locked.get("/api/overview").status == 200
    assert "Log out" in locked.get("/").text
    assert locked.form("/logout").status == 303
    assert locked.get("/api/overview").status == 401


def test_login_never_redirects_off_site(locked: Client) -> None:
    for target in ("//evil.example/", "http://evil.example/", "/\\evil.example"):
        res = locked.form("/login", {"token": TOKEN, "next": target})
        assert res.status == 303
        assert (res.header("Location") or "").endswith("127.0.0.1:8080/"), target


def test_bearer_token_works_for_reads_and_writes_without_csrf(locked: Client, spool: Spool) -> None:
    job_id = finished_job(spool, Status.FAILED)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert locked.get("/api/overview", headers=auth).status == 200
    assert locked.get("/metrics", headers=auth).status == 200
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    assert locked.get("/api/overview", headers=wrong).status == 401
    res = locked.post(f"/api/jobs/{job_id}/retry", json_body={}, headers=auth)
    assert res.status == 200
    evil = locked.post(
        f"/api/jobs/{job_id}/cancel",
        json_body={},
        headers={**auth, "Origin": "http://evil.example"},
    )
    assert evil.status == 403


def test_forged_or_expired_sessions_are_refused(locked: Client, env: SpoolEnv) -> None:
    guard = Guard(TOKEN)
    expired = guard.new_session(time.time() - SESSION_SECONDS - 10)
    locked.cookies[SESSION_COOKIE] = expired
    assert locked.get("/api/overview").status == 401
    good = guard.new_session(time.time())
    stamp, sig = good.split(".")
    locked.cookies[SESSION_COOKIE] = f"{int(stamp) + 1000}.{sig}"
    assert locked.get("/api/overview").status == 401
    other = Guard("another-token-another-token").new_session(time.time())
    locked.cookies[SESSION_COOKIE] = other
    assert locked.get("/api/overview").status == 401
    locked.cookies[SESSION_COOKIE] = good
    assert locked.get("/api/overview").status == 200, "sessions survive a restart with the token"


def test_with_a_token_any_host_name_may_be_used(locked: Client) -> None:
    locked.host = "jobs.internal.example"
    assert locked.get("/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200


# ------------------------------------------------------------------ binding and tokens


def test_a_public_address_needs_a_token() -> None:
    with pytest.raises(SecurityConfigError, match="without a token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", TOKEN)
    check_bind("127.0.0.1", None)
    check_bind("localhost", None)
    assert is_loopback("::1")
    assert not is_loopback("0.0.0.0")


def test_token_sources_and_strength(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text(f"  {TOKEN}\n")
    env = {TOKEN_ENV: "from-the-environment-123"}
    assert load_token(None, None, {}) is None
    assert load_token(None, None, env) == "from-the-environment-123"
    assert load_token(None, str(file), env) == TOKEN
    assert load_token("from-the-command-line", str(file), env) == "from-the-command-line"
    with pytest.raises(SecurityConfigError, match="at least 16"):
        load_token("short", None, {})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SecurityConfigError, match="empty"):
        load_token(None, str(empty), {})
    with pytest.raises(SecurityConfigError, match="cannot read"):
        load_token(None, str(tmp_path / "missing"), {})


def test_tokens_are_compared_in_constant_time() -> None:
    import inspect

    from jobspool.dashboard import security

    source = inspect.getsource(security)
    assert source.count("hmac.compare_digest") >= 3
    assert "== self.token" not in source


def test_get_requests_change_nothing(client: Client, spool: Spool) -> None:
    failed = finished_job(spool, Status.FAILED)
    pending = spool.submit(Job(job="SampleJob", method="process"), by="t", via="t")
    before = {s: sorted(spool.names(s)) for s in Status}
    for path in (
        "/",
        "/jobs",
        f"/jobs/{failed}",
        f"/jobs/{failed}/retry",
        f"/jobs/{pending}/cancel",
        "/api/actions/retry-failed",
        "/submit?job=Typed&method=add&params=[1]",
        f"/api/jobs/{pending}/log",
        "/metrics",
    ):
        client.get(path)
    assert {s: sorted(spool.names(s)) for s in Status} == before


def test_an_internal_error_hides_details_but_keeps_the_headers(
    client: Client, spool: Spool
) -> None:
    completed = spool.dir(Status.COMPLETED)
    completed.rmdir()
    completed.write_text("not a directory")
    for path in ("/", "/api/overview"):
        res = client.get(path)
        assert res.status == 500, path
        assert res.header("Content-Security-Policy") == CSP
        assert res.header("X-Frame-Options") == "DENY"
        assert "Traceback" not in res.text and "NotADirectoryError" not in res.text
