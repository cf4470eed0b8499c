"""Who may see and steer the dashboard, and how every response is hardened.

Owns the access token, login sessions, CSRF tokens, the Origin and Host
checks, the refusal to listen on a public address without a token, and the
security headers added to every response (a WSGI middleware, so even error
pages and static files carry them; ``harden_headers`` also serves the
answers the WSGI server writes itself). Framework-free: it reads WSGI environ
values and returns verdicts; ``jobspool.dashboard.app`` turns them into responses.

Invariants:
* Secrets are compared with ``hmac.compare_digest`` only.
* With a token, every route except the login form and static files needs
  either ``Authorization: Bearer <token>`` or a session cookie minted by the
  login form (HttpOnly, SameSite=Strict, signed with a key derived from the
  token, so changing the token logs everybody out, and sessions survive a
  restart). Logging out revokes the session in this process: a revoked
  value is refused until it expires (a restart forgets revocations; a new
  token ends every session). Revocations are bounded: when too many are
  kept, the oldest are folded into a floor, and every session issued before
  it is refused, which can only log people out.
* Wrong tokens are counted per client address (``jobspool.dashboard.throttle``);
  an address that has to wait gets 429 with Retry-After for every token it
  presents, right or wrong.
* Every state-changing request (anything but GET/HEAD) must come from this
  origin (Origin, else Referer, when the browser sends them) and carry a CSRF
  token bound to the browser's CSRF cookie. A bearer-authenticated request
  is exempt from the CSRF token only: a cross-site page cannot attach an
  Authorization header without a CORS preflight, which this app never grants.
* Without a token the app listens on loopback only, and refuses requests
  whose Host header is not a loopback name or the bound address, so a DNS
  rebinding page cannot talk to it through the victim's browser.
* A redirect target taken from a request (the login form's ``next``) is a
  path on this site made of URL characters only, else ``/``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobspool.dashboard.throttle import Throttle

TOKEN_ENV = "JOBSPOOL_DASHBOARD_TOKEN"  # noqa: S105 - a variable name, not a secret
MIN_TOKEN_LENGTH = 16
SESSION_COOKIE = "jobspool_session"
CSRF_COOKIE = "jobspool_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "HTTP_X_CSRF_TOKEN"
SESSION_SECONDS = 12 * 3600
MAX_REVOKED = 10_000  # logged-out sessions remembered until they expire
_MICRO = 1_000_000  # session expiries are in microseconds
SAFE_METHODS = frozenset({"GET", "HEAD"})
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/login"})

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)


class SecurityConfigError(ValueError):
    """The dashboard would be unsafe as configured (message says how to fix it)."""


# ------------------------------------------------------------------ tokens


def load_token(
    cli_token: str | None, token_file: str | None, environ: Mapping[str, str]
) -> str | None:
    """--token, else --token-file, else $JOBSPOOL_DASHBOARD_TOKEN; None if none given."""
    token = cli_token
    if token is None and token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SecurityConfigError(f"cannot read token file {token_file}: {exc}") from None
        if not token:
            raise SecurityConfigError(f"token file {token_file} is empty")
    if token is None:
        token = environ.get(TOKEN_ENV) or None
    if token is not None:
        token = token.strip()
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise SecurityConfigError(
                f"the dashboard token must be at least {MIN_TOKEN_LENGTH} characters without "
                'spaces; make one with: python -c "import secrets; print(secrets.token_urlsafe())"'
            )
    return token


def _addresses(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise SecurityConfigError(f"cannot resolve host {host!r}: {exc}") from None
    return [str(info[4][0]) for info in infos]


def is_loopback(host: str) -> bool:
    """True when every address the host name resolves to is a loopback address."""
    addresses = _addresses(host)
    return bool(addresses) and all(
        ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses
    )


def check_bind(host: str, token: str | None) -> None:
    if token is None and not is_loopback(host):
        raise SecurityConfigError(
            f"refusing to listen on {host} without a token: anyone who can reach it could "
            f"run and cancel jobs. Set {TOKEN_ENV} or pass --token-file FILE."
        )


# ------------------------------------------------------------------ redirects

# "/" then unreserved, sub-delimiter, ":", "@", "/", "?" and "%" characters:
# nothing a browser strips or rewrites (tab, newline, backslash, spaces,
# controls), and no second "/" or "\\" that would make it another host.
_SITE_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")


def safe_next(target: str) -> str:
    """A redirect target from a request: a path on this site, else ``/``."""
    return target if _SITE_PATH.fullmatch(target) else "/"


# ------------------------------------------------------------------ verdicts


@dataclass(frozen=True)
class Verdict:
    ok: bool
    status: int = 200
    reason: str = ""
    via: str = ""  # "bearer", "session" or "" (no token configured / public path)
    retry_after: int = 0  # seconds, with status 429


def _too_many(wait: int) -> Verdict:
    return Verdict(
        False, 429, f"Too many failed attempts; try again in {wait} s.", retry_after=wait
    )


ALLOW = Verdict(ok=True)


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")].lower()
    name = host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header
    return name.lower()


def _is_loopback_name(name: str) -> bool:
    if name in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class Guard:
    """Checks one request against the token, session, CSRF, Origin and Host rules."""

    def __init__(self, token: str | None, bound_host: str = "127.0.0.1") -> None:
        self.token = token
        self.bound_host = bound_host.lower()
        seed = token.encode() if token else secrets.token_bytes(32)
        self._session_key = hmac.new(seed, b"jobspool-dashboard-session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(seed, b"jobspool-dashboard-csrf", hashlib.sha256).digest()
        self.throttle = Throttle()
        self.clock: Callable[[], float] = time.monotonic  # the throttle's time
        self._revoked: OrderedDict[str, int] = OrderedDict()  # signature -> expiry
        self._revoked_floor = 0  # sessions expiring at or before this are refused
        self._last_stamp = 0  # the latest session expiry minted
        self._lock = threading.Lock()

    @property
    def token_required(self) -> bool:
        return self.token is not None

    def token_matches(self, candidate: str) -> bool:
        if self.token is None:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    # -------------------------------------------------------------- sessions

    def new_session(self, now: float) -> str:
        """``<expiry in microseconds>.<signature>``: distinct for every login of
        this process (a logout must not end somebody else's session)."""
        stamp = int((now + SESSION_SECONDS) * _MICRO)
        with self._lock:
            if self._last_stamp - _MICRO < stamp <= self._last_stamp:
                stamp = self._last_stamp + 1
            self._last_stamp = max(self._last_stamp, stamp)
        expires = str(stamp)
        return f"{expires}.{self._sign(self._session_key, expires)}"

    def session_valid(self, value: str, now: float) -> bool:
        expires, _, sig = value.partition(".")
        if not expires.isdigit() or not hmac.compare_digest(
            sig.encode(), self._sign(self._session_key, expires).encode()
        ):
            return False
        if not now * _MICRO < int(expires) <= (now + SESSION_SECONDS + 60) * _MICRO:
            return False
        with self._lock:
            return int(expires) > self._revoked_floor and sig not in self._revoked

    def revoke(self, value: str, now: float) -> None:
        """Refuse this session from now on (logout); a value that is not one is ignored."""
        if not self.session_valid(value, now):
            return
        expires, _, sig = value.partition(".")
        with self._lock:
            self._revoked[sig] = int(expires)
            # Sessions all live SESSION_SECONDS, so the oldest revocation expires first.
            while self._revoked and next(iter(self._revoked.values())) <= now * _MICRO:
                self._revoked.popitem(last=False)
            while len(self._revoked) > MAX_REVOKED:
                _, dropped = self._revoked.popitem(last=False)
                self._revoked_floor = max(self._revoked_floor, dropped)

    def revoked_count(self) -> int:
        with self._lock:
            return len(self._revoked)

    @staticmethod
    def _sign(key: bytes, text: str) -> str:
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    # -------------------------------------------------------------- csrf

    @staticmethod
    def new_csrf_cookie() -> str:
        return secrets.token_hex(16)

    def csrf_token(self, cookie: str) -> str:
        return self._sign(self._csrf_key, cookie)

    def csrf_valid(self, cookie: str, submitted: str) -> bool:
        if not cookie or not submitted:
            return False
        return hmac.compare_digest(submitted.encode(), self.csrf_token(cookie).encode())

    # -------------------------------------------------------------- checks

    def host_allowed(self, environ: Mapping[str, Any]) -> bool:
        host = str(environ.get("HTTP_HOST") or "")
        if self.token_required or not host:
            return True
        name = _host_name(host)
        return _is_loopback_name(name) or name == self.bound_host

    @staticmethod
    def same_origin(environ: Mapping[str, Any]) -> bool:
        host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "")
        expected = f"{environ.get('wsgi.url_scheme', 'http')}://{host}".lower()
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            return str(origin).lower() == expected
        referer = environ.get("HTTP_REFERER")
        if referer is not None:
            return _origin_of(str(referer)) == expected
        return True  # not a browser: the CSRF token (or bearer token) still applies

    def bearer(self, environ: Mapping[str, Any]) -> str | None:
        header = str(environ.get("HTTP_AUTHORIZATION") or "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return value.strip()

    def _try_token(self, environ: Mapping[str, Any], candidate: str) -> Verdict:
        """A presented token, counted against the client's address when wrong."""
        address = str(environ.get("REMOTE_ADDR") or "")
        now = self.clock()
        wait = self.throttle.wait(address, now)
        if wait:
            return _too_many(wait)
        if self.token_matches(candidate):
            self.throttle.succeeded(address)
            return ALLOW
        self.throttle.failed(address, now)
        return Verdict(False, 401, "wrong token")

    def login(self, environ: Mapping[str, Any], candidate: str) -> Verdict:
        """The login form's token: ok, 401 when wrong, 429 while the address must wait."""
        return self._try_token(environ, candidate)

    def authenticate(self, environ: Mapping[str, Any], session_cookie: str, now: float) -> Verdict:
        """Who is calling: by bearer token, by session, or nobody (allowed without a token)."""
        if not self.token_required:
            return ALLOW
        bearer = self.bearer(environ)
        if bearer is not None:
            tried = self._try_token(environ, bearer)
            if tried.ok:
                return Verdict(True, via="bearer")
            return tried if tried.status == 429 else Verdict(False, 401, "invalid bearer token")
        if session_cookie and self.session_valid(session_cookie, now):
            return Verdict(True, via="session")
        path = str(environ.get("PATH_INFO") or "/")
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return ALLOW
        return Verdict(False, 401, "log in first")

    def check(
        self,
        environ: Mapping[str, Any],
        *,
        session_cookie: str,
        csrf_cookie: str,
        csrf_submitted: Callable[[], str],
        now: float,
    ) -> Verdict:
        """The verdict for one request; ``csrf_submitted`` is only called for writes."""
        if not self.host_allowed(environ):
            return Verdict(False, 403, "this Host name is not allowed (DNS rebinding guard)")
        who = self.authenticate(environ, session_cookie, now)
        method = str(environ.get("REQUEST_METHOD") or "GET").upper()
        if not who.ok or method in SAFE_METHODS:
            return who
        if not self.same_origin(environ):
            return Verdict(False, 403, "cross-origin request refused")
        if who.via != "bearer" and not self.csrf_valid(csrf_cookie, csrf_submitted()):
            return Verdict(False, 403, "missing or invalid CSRF token; reload the page")
        return who


# ------------------------------------------------------------------ headers

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def harden_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The response headers with the security headers set (and no-store by default)."""
    names = {name.lower() for name, _ in HEADERS}
    kept = [(k, v) for k, v in headers if k.lower() not in names]
    if not any(k.lower() == "cache-control" for k, _ in kept):
        kept.append(("Cache-Control", "no-store"))
    return kept + list(HEADERS)


def with_security_headers(app: WsgiApp) -> WsgiApp:
    """Wrap a WSGI app so that every response carries the security headers."""

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, harden_headers(headers), exc_info)

        return app(environ, start)

    return wrapped
