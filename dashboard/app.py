"""The dashboard's routes: HTML pages, live fragments, the JSON API and /metrics.

Owns URLs and HTTP semantics only; what a route shows comes from
:mod:`jobspool.dashboard.overview`, :mod:`jobspool.dashboard.queries` and the spool, what it
does from :mod:`jobspool.dashboard.actions`, and who may call it from
:mod:`jobspool.dashboard.security` (checked in one ``before_request`` hook for every
route). Rules every route keeps:

* GET and HEAD never change anything; actions are POST only (a GET to an
  action URL is 405).
* A job id from a URL is checked with ``jobspool.model.is_valid_id`` before any
  file is touched; anything else (``..``, ``%2e%2e``, NUL, slashes) is 404.
* A lost race is 409 with the engine's message; a missing job is 404.
* API errors are JSON ``{"error": ..., "status": ...}``; page errors are pages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import bottle

from jobspool import batch, unique
from jobspool.actions import resubmitted_from
from jobspool.dashboard import actions, metrics, present
from jobspool.dashboard import holds as holds_view
from jobspool.dashboard import schedules as schedule_page
from jobspool.dashboard.charts import bar_chart
from jobspool.dashboard.logtail import TAIL_BYTES, log_size, open_log, read_log
from jobspool.dashboard.overview import CorruptCounter, gather
from jobspool.dashboard.queries import PER_PAGE, SORTS, BadQueryError, JobPage, JobQuery
from jobspool.dashboard.render import Views, load_static
from jobspool.dashboard.runners import RunningJob
from jobspool.dashboard.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    SESSION_SECONDS,
    WsgiApp,
    safe_next,
    with_security_headers,
)
from jobspool.dashboard.state import Dashboard
from jobspool.errors import Conflict, InvalidParams, JobNotFound, NotAllowed, NotPublished
from jobspool.model import JobView, Progress, is_valid_id, utcnow
from jobspool.progress import read_progress
from jobspool.states import Status

MAX_BODY = 2 * 1024 * 1024
JSON_TYPE = "application/json"
FLASH = {
    "retried": "Sent back to pending: a runner will pick it up.",
    "cancelled": "Cancelled.",
    "cancel-requested": "Cancel requested: its runner stops the attempt within a moment.",
    "submitted": "Submitted.",
    "resubmitted": "Resubmitted as this new job.",
    "unique-held": "Not submitted: this job holds the same unique key.",
}
# The state a new job's flash was made for, implied: a job is submitted at
# revision 1, in pending/.
FLASH_NEW = frozenset({"submitted", "resubmitted"})
# A job page's flash shows only while the job is still in the state the
# action left it in (see _still), so "Sent back to pending" goes once the
# attempt it asked for has ended. A claim is not "moved on": the text then
# says that a runner has the job.
FLASH_MOVED = {
    ("retried", "running"): "Sent back to pending, and a runner has picked it up.",
    ("submitted", "running"): "Submitted, and a runner has picked it up.",
    ("resubmitted", "running"): "Resubmitted as this new job, and a runner has picked it up.",
}
ENV_CSRF = "jobspool.csrf"
ENV_VIA = "jobspool.auth"

request: Any = bottle.request
response: Any = bottle.response


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path == "/metrics"


def _is_fragment(path: str) -> bool:
    """Live-refresh fragments: fetched by script, so they never redirect to a login page."""
    return path.startswith("/partials/")


def _json(data: Any, status: int = 200) -> str:
    response.status = status
    response.content_type = JSON_TYPE
    return json.dumps(data, ensure_ascii=False, default=str)


def _query() -> dict[str, str]:
    out = {}
    for key in request.query:
        value = request.query.getunicode(key)
        out[str(key)] = value if isinstance(value, str) else ""
    return out


def _form() -> dict[str, str]:
    out = {}
    for key in request.forms:
        value = request.forms.getunicode(key)
        out[str(key)] = value if isinstance(value, str) else ""
    return out


def _is_json_body() -> bool:
    return str(request.content_type or "").split(";")[0].strip().lower() == JSON_TYPE


def _payload() -> dict[str, Any]:
    """The POST body as a mapping: JSON object or form fields."""
    if _is_json_body():
        raw = request.body.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            bottle.abort(413, "request body too large")
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            bottle.abort(400, "the body is not valid JSON")
        if not isinstance(data, dict):
            bottle.abort(400, "the body must be a JSON object")
        found: dict[str, Any] = data
        return found
    return dict(_form())


def _actor() -> str:
    return f"dashboard@{request.environ.get('REMOTE_ADDR') or 'unknown'}"


def _valid_id(job_id: str) -> str:
    if not is_valid_id(job_id):
        bottle.abort(404, "no such job")
    return job_id


def _link(path: str, params: Mapping[str, str]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def _flash(params: Mapping[str, str]) -> str:
    done = params.get("done", "")
    if done == "bulk":
        try:
            n = int(params.get("n", "0"))
            conflicts = int(params.get("conflicts", "0"))
            left = int(params.get("left", "0"))
        except ValueError:
            return ""
        text = f"Retried {n} failed job{'s' if n != 1 else ''}."
        if conflicts:
            text += f" {conflicts} had already moved on."
        if left:
            text += f" {left} more match: run it again to retry the next batch."
        return text
    return FLASH.get(done, "")


def _still(done: str, view: JobView) -> bool:
    """Whether the job is still in the state the action ``done`` left it in.

    Read from the record alone (the action's own history entry, the
    attempts since, the revision: every move but a claim raises it), so the
    URL stays a plain ``?done=...``."""
    rec = view.record
    status = view.status
    last = rec.history[-1].action if rec.history else ""
    if done == "retried":
        unrun = len(rec.attempts) == rec.attempt_base
        return (
            status in (Status.PENDING.value, Status.RUNNING.value) and last == "retried" and unrun
        )
    if done in ("submitted", "resubmitted"):
        return rec.revision <= 1 and status in (Status.PENDING.value, Status.RUNNING.value)
    if done == "cancelled":
        return status == Status.CANCELLED.value and last == "cancelled"
    if done == "cancel-requested":
        return status == Status.RUNNING.value
    return True


def _job_flash(view: JobView, params: Mapping[str, str], *, live: bool) -> tuple[str, str]:
    """A job page's flash, and the ``done`` that keeps it on the live refreshes.

    The live part shows it only while the job is still in the state the
    action left it in. The page the action redirects to shows it in any
    case (a quick job may have finished before the browser got there),
    saying that the job has moved on since; its first live refresh then
    drops it."""
    text = _flash(params)
    done = params.get("done", "")
    if not text or done not in FLASH:
        return "", ""
    if _still(done, view):
        return FLASH_MOVED.get((done, view.status), text), done
    if live:
        return "", done
    return f"{text} The job has moved on since: it is {view.status} now.", done


class DashboardApp:
    """Route handlers for one dashboard; :meth:`routes` is the whole URL map."""

    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash
        self.guard = dash.guard
        self.views = Views()
        self.static = load_static()
        self.corrupt = CorruptCounter(dash.spool)

    def routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("GET", "/static/<name>", self.static_file),
            ("GET", "/favicon.ico", self.favicon),
            ("GET", "/login", self.login_form),
            ("POST", "/login", self.login),
            ("POST", "/logout", self.logout),
            ("GET", "/", self.overview_page),
            ("GET", "/partials/overview", self.overview_fragment),
            ("GET", "/api/overview", self.overview_api),
            ("GET", "/metrics", self.metrics_text),
            ("GET", "/api/runners", self.runners_api),
            ("GET", "/api/holds", self.holds_api),
            ("POST", "/holds/<verb:re:pause|resume>", self.holds_form),
            ("POST", "/api/holds/<verb:re:pause|resume>", self.holds_action_api),
            ("GET", "/schedules", self.schedules_page),
            ("GET", "/api/schedules", self.schedules_api),
            ("POST", "/schedules/<name>/run", self.schedule_run_form),
            ("POST", "/api/schedules/<name>/run", self.schedule_run_api),
            ("GET", "/jobs", self.jobs_page),
            ("GET", "/partials/jobs", self.jobs_fragment),
            ("GET", "/api/jobs", self.jobs_api),
            ("POST", "/api/jobs", self.submit_api),
            ("POST", "/api/jobs/batch", self.batch_api),
            ("GET", "/jobs/<job_id>", self.job_page),
            ("GET", "/partials/job/<job_id>", self.job_fragment),
            ("GET", "/api/jobs/<job_id>", self.job_api),
            ("GET", "/api/jobs/<job_id>/log", self.job_log_api),
            ("GET", "/jobs/<job_id>/log", self.job_log_raw),
            ("POST", "/jobs/<job_id>/retry", self.retry_form),
            ("POST", "/jobs/<job_id>/cancel", self.cancel_form),
            ("POST", "/api/jobs/<job_id>/retry", self.retry_api),
            ("POST", "/api/jobs/<job_id>/cancel", self.cancel_api),
            ("GET", "/jobs/<job_id>/resubmit", self.resubmit_page),
            ("POST", "/jobs/<job_id>/resubmit", self.resubmit_form),
            ("POST", "/api/jobs/<job_id>/resubmit", self.resubmit_api),
            ("POST", "/actions/retry-failed", self.bulk_form),
            ("POST", "/api/actions/retry-failed", self.bulk_api),
            ("GET", "/submit", self.submit_page),
            ("POST", "/submit", self.submit_form),
            ("GET", "/api/allowed-jobs", self.allowed_api),
            ("GET", "/api/session", self.session_api),
        ]

    # ------------------------------------------------------------- rendering

    def page(self, name: str, status: int = 200, **values: Any) -> str:
        response.status = status
        response.content_type = "text/html; charset=utf-8"
        common = {
            "csrf": request.environ.get(ENV_CSRF, ""),
            "logged_in": request.environ.get(ENV_VIA) == "session",
            "spool": str(self.dash.spool.root),
            "flash": _flash(_query()),
            "fmt": present,
            "nav": "",
        }
        common.update(values)
        return self.views.render(name, **common)

    # ------------------------------------------------------------- guard

    def check_request(self) -> None:
        """Runs before every route: body size, CSRF cookie, then the guard's verdict."""
        env = request.environ
        length = env.get("CONTENT_LENGTH") or "0"
        if not str(length).isdigit() or int(length) > MAX_BODY:
            bottle.abort(413, "request body too large")
        cookie = request.get_cookie(CSRF_COOKIE) or ""
        fresh_cookie = len(cookie) != 32
        if fresh_cookie:
            cookie = self.guard.new_csrf_cookie()
            _set_cookie(CSRF_COOKIE, cookie)

        def submitted() -> str:
            header = env.get(CSRF_HEADER)
            if header:
                return str(header)
            if _is_json_body():
                return ""
            value = request.forms.getunicode(CSRF_FIELD)
            return value if isinstance(value, str) else ""

        verdict = self.guard.check(
            env,
            session_cookie=request.get_cookie(SESSION_COOKIE) or "",
            # A cookie minted just now cannot have a matching token yet.
            csrf_cookie="" if fresh_cookie else cookie,
            csrf_submitted=submitted,
            now=time.time(),
        )
        env[ENV_CSRF] = self.guard.csrf_token(cookie)
        env[ENV_VIA] = verdict.via
        if verdict.ok:
            return
        path = str(env.get("PATH_INFO") or "/")
        method = str(env.get("REQUEST_METHOD") or "GET").upper()
        page = not _is_api(path) and not _is_fragment(path)
        if verdict.status == 401 and page and method in ("GET", "HEAD"):
            target = path + (f"?{env['QUERY_STRING']}" if env.get("QUERY_STRING") else "")
            bottle.redirect(_link("/login", {"next": target}), 303)
        headers = {"WWW-Authenticate": 'Bearer realm="jobspool"'} if verdict.status == 401 else {}
        if verdict.retry_after:
            headers["Retry-After"] = str(verdict.retry_after)
        raise bottle.HTTPError(verdict.status, verdict.reason, **headers)

    def error_page(self, err: Any) -> str:
        status = int(err.status_code)
        message = str(err.body or err.status_line)
        if status >= 500:
            message = "Internal error; the dashboard's log has the details."
        if _is_api(str(request.path)):
            return _json({"error": message, "status": status}, status)
        return self.page(
            "error.tpl", status=status, code=status, message=message, title=str(status)
        )

    # ------------------------------------------------------------- static, login

    def static_file(self, name: str) -> Any:
        item = self.static.get(name)
        if item is None:
            bottle.abort(404, "no such file")
        assert item is not None
        response.set_header("ETag", item.etag)
        response.set_header("Cache-Control", "no-cache")
        if request.environ.get("HTTP_IF_NONE_MATCH") == item.etag:
            return bottle.HTTPResponse(status=304, headers=dict(response.headerlist))
        response.content_type = item.content_type
        return item.body

    def favicon(self) -> None:
        bottle.redirect("/static/favicon.svg", 301)

    def login_form(self) -> str:
        if not self.guard.token_required:
            bottle.redirect("/", 303)
        target = safe_next(_query().get("next", "/"))
        return self.page("login.tpl", title="Log in", next=target, error="")

    def login(self) -> str:
        if not self.guard.token_required:
            bottle.redirect("/", 303)
        form = _form()
        target = safe_next(form.get("next", "/"))
        verdict = self.guard.login(request.environ, form.get("token", ""))
        if not verdict.ok:
            if verdict.retry_after:
                response.set_header("Retry-After", str(verdict.retry_after))
            error = "Wrong token." if verdict.status == 401 else verdict.reason
            return self.page(
                "login.tpl", status=verdict.status, title="Log in", next=target, error=error
            )
        _set_cookie(SESSION_COOKIE, self.guard.new_session(time.time()), max_age=SESSION_SECONDS)
        bottle.redirect(target, 303)
        return ""

    def logout(self) -> None:
        self.guard.revoke(request.get_cookie(SESSION_COOKIE) or "", time.time())
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        bottle.redirect("/login" if self.guard.token_required else "/", 303)

    # ------------------------------------------------------------- overview

    def _overview_values(self) -> dict[str, Any]:
        ov = gather(self.dash, self.corrupt)
        return {
            "ov": ov,
            "minute_chart": bar_chart(ov.minutes, hourly=False),
            "hour_chart": bar_chart(ov.hours, hourly=True),
            "statuses": [s.value for s in Status],
            "holds": holds_view.gather(self.dash),
        }

    def overview_page(self) -> str:
        return self.page(
            "overview.tpl", title="Overview", nav="overview", **self._overview_values()
        )

    def overview_fragment(self) -> str:
        return self.page("_overview.tpl", **self._overview_values())

    def overview_api(self) -> str:
        return _json(gather(self.dash, self.corrupt).to_json())

    def metrics_text(self) -> str:
        ov = gather(self.dash, self.corrupt)
        response.content_type = metrics.CONTENT_TYPE
        return metrics.render(ov, self.dash) + metrics.render_holds(holds_view.gather(self.dash))

    def runners_api(self) -> str:
        return _json({"runners": [r.to_json() for r in self.dash.runners.snapshot()]})

    # ------------------------------------------------------------- pauses and limits

    def holds_api(self) -> str:
        return _json(holds_view.gather(self.dash).to_json())

    def _hold(self, verb: str, names: list[str]) -> list[str]:
        try:
            if verb == "pause":
                return holds_view.pause(self.dash, names, _actor())
            return holds_view.resume(self.dash, names)
        except NotAllowed as exc:
            bottle.abort(400, str(exc))
            raise  # abort raised already

    def holds_form(self, verb: str) -> None:
        job = _form().get("job", "")
        self._hold(verb, [job] if job else [])
        bottle.redirect("/", 303)

    def holds_action_api(self, verb: str) -> str:
        jobs = _payload().get("jobs", [])
        if not isinstance(jobs, list) or not all(isinstance(j, str) for j in jobs):
            bottle.abort(400, "jobs must be a list of job names (none: the whole spool)")
        done = self._hold(verb, jobs)
        return _json({verb: done or "spool", **holds_view.gather(self.dash).to_json()})

    # ------------------------------------------------------------- schedules

    def schedules_page(self) -> str:
        found = schedule_page.rows(self.dash)
        return self.page(
            "schedules.tpl",
            title="Schedules",
            nav="schedules",
            schedules=found,
            when=schedule_page.when_text,
        )

    def schedules_api(self) -> str:
        return _json(schedule_page.to_json(schedule_page.rows(self.dash)))

    def _run_schedule(self, name: str) -> str:
        spec = schedule_page.spec_of(self.dash, name)
        if spec is None:
            bottle.abort(404, "no such schedule")
        assert spec is not None
        return schedule_page.run_now(self.dash, name, spec, _actor())

    def schedule_run_form(self, name: str) -> None:
        job_id = self._run_schedule(name)
        bottle.redirect(_link(f"/jobs/{job_id}", {"done": "submitted"}), 303)

    def schedule_run_api(self, name: str) -> str:
        job_id = self._run_schedule(name)
        response.set_header("Location", f"/api/jobs/{job_id}")
        return _json({"id": job_id, "status": Status.PENDING.value}, 201)

    # ------------------------------------------------------------- lists

    def _find(self, params: Mapping[str, str]) -> JobPage:
        try:
            query = JobQuery.parse(params)
        except BadQueryError as exc:
            bottle.abort(400, str(exc))
        self.dash.fresh()
        return self.dash.finder.find(query)

    def _list_values(self, result: JobPage) -> dict[str, Any]:
        query = result.query
        allowed = set(self.dash.config.settings.allowed_jobs)
        names = sorted(allowed | set(self.dash.index.job_names()))

        def link(**changes: Any) -> str:
            return _link("/jobs", query.params(**changes))

        now = utcnow()
        return {
            "result": result,
            "query": query,
            "job_names": names,
            "counts": self.dash.index.counts(),
            "statuses": [s.value for s in Status],
            "sorts": SORTS,
            "per_pages": PER_PAGE,
            "link": link,
            "fragment_url": _link("/partials/jobs", query.params()),
            "rows": [present.list_row(v, now) for v in result.views],
        }

    def jobs_page(self) -> str:
        values = self._list_values(self._find(_query()))
        return self.page("jobs.tpl", title="Jobs", nav="jobs", **values)

    def jobs_fragment(self) -> str:
        return self.page("_jobs.tpl", **self._list_values(self._find(_query())))

    def jobs_api(self) -> str:
        result = self._find(_query())
        query = result.query
        now = utcnow()
        return _json(
            {
                "total": result.total,
                "page": query.page,
                "per_page": query.per_page,
                "pages": result.pages,
                "partial": result.partial,
                "jobs": [present.summary(v, now) for v in result.views],
            }
        )

    # ------------------------------------------------------------- one job

    def _load(self, job_id: str) -> JobView:
        view = self.dash.spool.find(_valid_id(job_id))
        if view is None:
            bottle.abort(404, f"no job with id {job_id}")
        assert view is not None
        return view

    def _live_progress(self, view: JobView) -> Progress | None:
        if view.status != Status.RUNNING.value:
            return None
        return read_progress(self.dash.spool, view.id)

    def _running_job(self, view: JobView) -> tuple[str | None, RunningJob | None]:
        """The claiming runner's host, and what its heartbeat says of a running
        job's attempt (pid, start), if it says anything."""
        claim = present.running_claim(view)
        if claim is None:
            return None, None
        for info in self.dash.runners.snapshot():
            if info.runner == claim.runner:
                return info.host, next((j for j in info.jobs if j.id == view.id), None)
        return None, None

    def _resubmissions(self, view: JobView) -> list[str]:
        if not present.can_resubmit(view):
            return []
        return self.dash.fresh().resubmissions(view.id)

    def _job_values(self, view: JobView, *, live: bool = True) -> dict[str, Any]:
        flash, done = _job_flash(view, _query(), live=live)
        host, running = self._running_job(view)
        return {
            "view": view,
            "rec": view.record,
            "progress": present.progress_of(view, self._live_progress(view)),
            "active": present.is_active(view.status),
            "actions": present.job_actions(view),
            "can_resubmit": present.can_resubmit(view),
            "rejected_for_params": present.rejected_for_params(view.record),
            "waiting": present.waiting_of(view),
            "counts": present.attempt_counts(view),
            "claim": present.running_claim(view),
            "running": running,
            "running_host": host,
            "source": resubmitted_from(view.record),
            "resubmissions": self._resubmissions(view),
            "unique_held": unique.holder(self.dash.spool, view.record),
            "job_flash": flash,
            "fragment_url": _link(f"/partials/job/{view.id}", {"done": done} if done else {}),
        }

    def job_page(self, job_id: str) -> str:
        view = self._load(job_id)
        chunk = read_log(self.dash.spool.job_log_path(view.id), None)
        return self.page(
            "job.tpl",
            title=f"Job {view.id}",
            nav="jobs",
            chunk=chunk,
            tail_bytes=TAIL_BYTES,
            # The job's own flash is in its live part, which drops it once
            # the job has moved on.
            flash="",
            **self._job_values(view, live=False),
        )

    def job_fragment(self, job_id: str) -> str:
        return self.page("_job.tpl", **self._job_values(self._load(job_id)))

    def job_api(self, job_id: str) -> str:
        view = self._load(job_id)
        size = log_size(self.dash.spool.job_log_path(view.id))
        detail = present.detail(view, self._live_progress(view), size, self._resubmissions(view))
        return _json(detail)

    def job_log_api(self, job_id: str) -> str:
        _valid_id(job_id)
        raw = _query().get("offset", "")
        if raw and not raw.isdigit():
            bottle.abort(400, "offset must be a byte offset (a whole number)")
        where = self.dash.spool.locate(job_id)
        if where is None:
            bottle.abort(404, f"no job with id {job_id}")
        assert where is not None
        chunk = read_log(self.dash.spool.job_log_path(job_id), int(raw) if raw else None)
        data = chunk.to_json()
        data["status"] = where[0].value
        data["active"] = present.is_active(where[0].value)
        return _json(data)

    def job_log_raw(self, job_id: str) -> Any:
        view = self._load(job_id)
        limit = self.dash.config.settings.logs.job_log_max_bytes
        handle = open_log(self.dash.spool.job_log_path(view.id), limit)
        response.content_type = "text/plain; charset=utf-8"
        return "" if handle is None else handle

    # ------------------------------------------------------------- actions

    def _act(self, do: Callable[[], actions.Outcome]) -> actions.Outcome:
        try:
            outcome = do()
        except JobNotFound as exc:
            bottle.abort(404, str(exc))
        except Conflict as exc:
            bottle.abort(409, str(exc))
        self.dash.changed()
        return outcome

    def _retry(self, job_id: str) -> actions.Outcome:
        return self._act(lambda: actions.retry(self.dash.spool, _valid_id(job_id), _actor()))

    def _cancel(self, job_id: str) -> actions.Outcome:
        return self._act(lambda: actions.cancel(self.dash.spool, _valid_id(job_id), _actor()))

    def retry_form(self, job_id: str) -> None:
        done = self._retry(job_id)
        bottle.redirect(_link(f"/jobs/{done.id}", {"done": done.outcome}), 303)

    def cancel_form(self, job_id: str) -> None:
        done = self._cancel(job_id)
        bottle.redirect(_link(f"/jobs/{done.id}", {"done": done.outcome}), 303)

    def retry_api(self, job_id: str) -> str:
        done = self._retry(job_id)
        return _json({"id": done.id, "outcome": done.outcome, "status": done.status})

    def cancel_api(self, job_id: str) -> str:
        done = self._cancel(job_id)
        return _json({"id": done.id, "outcome": done.outcome, "status": done.status})

    def _bulk(self, data: Mapping[str, Any]) -> actions.BulkResult:
        job = str(data.get("job") or "")
        q = str(data.get("q") or "")
        try:
            JobQuery.parse({"status": "failed", "job": job, "q": q})
            limit = actions.parse_limit(data.get("limit"))
        except (BadQueryError, ValueError) as exc:
            bottle.abort(400, str(exc))
        self.dash.fresh()
        try:
            result = actions.bulk_retry(
                self.dash.finder, self.dash.spool, job=job, q=q, limit=limit, by=_actor()
            )
        except actions.IndexNotReadyError as exc:
            bottle.abort(503, str(exc))
        self.dash.changed()
        return result

    def bulk_form(self) -> None:
        form = _form()
        result = self._bulk(form)
        params = {"status": "failed", "job": form.get("job", ""), "q": form.get("q", "")}
        params = {k: v for k, v in params.items() if v}
        params |= {
            "done": "bulk",
            "n": str(len(result.retried)),
            "conflicts": str(result.conflicts),
            "left": str(result.remaining),
        }
        bottle.redirect(_link("/jobs", params), 303)

    def bulk_api(self) -> str:
        return _json(self._bulk(_payload()).to_json())

    # ------------------------------------------------------------- submit

    def _submit_values(
        self, values: Mapping[str, str], errors: Mapping[str, str]
    ) -> dict[str, Any]:
        return {"jobs": self.dash.configs.jobs(), "values": values, "errors": errors}

    def submit_page(self) -> str:
        values = {k: v for k, v in _query().items() if k in ("job", "method")}
        return self.page(
            "submit.tpl", title="Submit a job", nav="submit", **self._submit_values(values, {})
        )

    def _submit(self, fields: Mapping[str, Any]) -> str:
        sub = actions.parse_submission(fields)
        job_id = actions.submit(self.dash.config, self.dash.spool, sub, _actor())
        self.dash.changed()
        return job_id

    def submit_form(self) -> str:
        form = _form()
        try:
            job_id = self._submit(form)
        except actions.SubmitError as exc:
            values = self._submit_values(form, exc.errors)
            return self.page("submit.tpl", status=400, title="Submit a job", nav="submit", **values)
        done = "unique-held" if unique.is_existing(job_id) else "submitted"
        bottle.redirect(_link(f"/jobs/{job_id}", {"done": done}), 303)
        return ""

    def submit_api(self) -> str:
        try:
            job_id = self._submit(_payload())
        except actions.SubmitError as exc:
            return _json({"error": str(exc), "fields": exc.errors, "status": 400}, 400)
        response.set_header("Location", f"/api/jobs/{job_id}")
        if unique.is_existing(job_id):
            # Nothing was written: the job holding the key is the answer.
            held = self.dash.spool.find(job_id)
            status = held.status if held is not None else Status.PENDING.value
            body = {"id": job_id, "status": status, "existing": True}
            return _json(body | {"message": FLASH["unique-held"]}, 200)
        return _json({"id": job_id, "status": Status.PENDING.value, "existing": False}, 201)

    def batch_api(self) -> str:
        """POST {"jobs": [{job, method, params, ...}, ...]}: all validated, then
        published with one flush (jobspool.batch); 201 with the ids in order."""
        if not _is_json_body():
            return _json({"error": "send the batch as JSON", "status": 415}, 415)
        jobs = _payload().get("jobs")
        if not isinstance(jobs, list):
            return _json({"error": 'the body is {"jobs": [...]}', "status": 400}, 400)
        labels = [f"jobs[{i}]" for i in range(len(jobs))]
        try:
            ids = batch.submit_labelled(
                self.dash.config,
                jobs,
                labels,
                submitted_by=_actor(),
                via=actions.VIA,
                spool=self.dash.spool,
            )
        except NotPublished as exc:
            self.dash.changed()
            body = {"error": str(exc), "published": exc.published, "status": 503}
            return _json(body, 503)
        except (InvalidParams, NotAllowed, Conflict) as exc:
            status = 409 if isinstance(exc, Conflict) else 400
            return _json({"error": str(exc), "status": status}, status)
        self.dash.changed()
        return _json({"ids": ids}, 201)

    # ------------------------------------------------------------- resubmit

    def _resubmit_page(
        self, view: JobView, text: str, errors: Mapping[str, str], status: int
    ) -> str:
        return self.page(
            "resubmit.tpl",
            status=status,
            title=f"Edit and resubmit {view.id}",
            nav="jobs",
            view=view,
            rec=view.record,
            params_text=text,
            errors=errors,
            signature=self._signature(view.record.job, view.record.method),
        )

    def _signature(self, job: str, method: str) -> str | None:
        for info in self.dash.configs.jobs():
            if info.name == job:
                return next((m.signature for m in info.methods if m.name == method), None)
        return None

    def _resubmittable(self, job_id: str) -> JobView:
        view = self._load(job_id)
        if not present.can_resubmit(view):
            bottle.abort(
                409,
                f"job {view.id} is {view.status}; only failed or cancelled jobs can be resubmitted",
            )
        return view

    def resubmit_page(self, job_id: str) -> str:
        view = self._resubmittable(job_id)
        return self._resubmit_page(view, present.params_text(view.record.params), {}, 200)

    def _resubmit(self, job_id: str, raw: object) -> str:
        found: list[str] = []

        def do() -> actions.Outcome:
            new_id = actions.resubmit(
                self.dash.config, self.dash.spool, _valid_id(job_id), raw, _actor()
            )
            found.append(new_id)
            return actions.Outcome(new_id, "resubmitted", Status.PENDING.value)

        self._act(do)
        return found[0]

    def resubmit_form(self, job_id: str) -> str:
        form = _form()
        text = form.get("params", "")
        try:
            new_id = self._resubmit(job_id, text)
        except actions.SubmitError as exc:
            return self._resubmit_page(self._load(job_id), text, exc.errors, 400)
        bottle.redirect(_link(f"/jobs/{new_id}", {"done": "resubmitted"}), 303)
        return ""

    def resubmit_api(self, job_id: str) -> str:
        data = _payload()
        if "params" not in data:
            return _json(
                {"error": "params: required", "fields": {"params": "required"}, "status": 400}, 400
            )
        try:
            new_id = self._resubmit(job_id, data["params"])
        except actions.SubmitError as exc:
            return _json({"error": str(exc), "fields": exc.errors, "status": 400}, 400)
        response.set_header("Location", f"/api/jobs/{new_id}")
        return _json(
            {"id": new_id, "status": Status.PENDING.value, "resubmitted_from": job_id}, 201
        )

    def allowed_api(self) -> str:
        return _json({"jobs": [j.to_json() for j in self.dash.configs.jobs()]})

    def session_api(self) -> str:
        return _json(
            {
                "csrf": request.environ.get(ENV_CSRF, ""),
                "token_required": self.guard.token_required,
                "auth": request.environ.get(ENV_VIA) or None,
            }
        )


def _set_cookie(name: str, value: str, **extra: Any) -> None:
    response.set_cookie(
        name,
        value,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.environ.get("wsgi.url_scheme") == "https",
        **extra,
    )


def create_app(dash: Dashboard) -> WsgiApp:
    """The WSGI application for one dashboard (security headers included)."""
    handlers = DashboardApp(dash)
    app: Any = bottle.Bottle(catchall=True)
    app.config["json.enable"] = False
    app.add_hook("before_request", handlers.check_request)
    for method, path, callback in handlers.routes():
        app.route(path, method, callback)
    for code in (400, 401, 403, 404, 405, 409, 413, 429, 500, 503):
        app.error_handler[code] = handlers.error_page
    wsgi: WsgiApp = app.wsgi
    return with_security_headers(wsgi)
