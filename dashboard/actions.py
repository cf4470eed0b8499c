"""What a person can do from the dashboard: retry, cancel, bulk retry, submit, resubmit.

Owns turning a request into calls on the engine, and nothing else: every
change goes through ``jobspool.actions.retry``, ``jobspool.actions.cancel``,
``jobspool.actions.resubmit`` and ``Spool.submit`` with ``via="dashboard"``,
so the job's history records who did what, and the engine's rename protocol
decides races. When a person races a runner or another person, exactly one
wins; the loser gets :class:`jobspool.errors.Conflict` (HTTP 409), and
nothing is half done.

Submissions are validated as the command line validates them
(``jobspool.submit.validate``: allow-list, method, params bound to the
signature) before anything is written; errors come back per form field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from jobspool import actions as job_actions
from jobspool.config import Config
from jobspool.dashboard.queries import JobFinder, JobQuery
from jobspool.errors import Conflict, InvalidParams, JobNotFound, JobspoolError, NotAllowed
from jobspool.model import Job
from jobspool.names import job_id_of
from jobspool.spool import Spool
from jobspool.states import Status
from jobspool.submit import build_job, fill_unique, params_from_json, queue_job, validate

VIA = "dashboard"
BULK_DEFAULT = 500
BULK_MAX = 5000


class IndexNotReadyError(JobspoolError):
    """A bulk action needs the index of failed jobs, which is still being read."""


@dataclass(frozen=True)
class Outcome:
    id: str
    outcome: str  # "retried", "cancelled", "cancel-requested" or "resubmitted"
    status: str  # the job's status right after the action


def retry(spool: Spool, job_id: str, by: str) -> Outcome:
    view = job_actions.retry(spool, job_id, by=by, via=VIA)
    return Outcome(view.id, "retried", view.status)


def cancel(spool: Spool, job_id: str, by: str) -> Outcome:
    result = job_actions.cancel(spool, job_id, by=by, via=VIA)
    if result == "cancelled":
        return Outcome(job_id, "cancelled", Status.CANCELLED.value)
    return Outcome(job_id, "cancel-requested", Status.RUNNING.value)


@dataclass
class BulkResult:
    matched: int = 0
    retried: list[str] = field(default_factory=list)
    conflicts: int = 0  # moved by someone else meanwhile
    missing: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.matched - len(self.retried) - self.conflicts - self.missing)

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "retried": len(self.retried),
            "ids": self.retried,
            "conflicts": self.conflicts,
            "missing": self.missing,
            "remaining": self.remaining,
        }


_WHOLE = re.compile(r"\s*[0-9]{1,9}\s*")


def parse_limit(raw: object) -> int:
    """The bulk retry's ``limit`` from JSON or a form: absent means the default;
    else a whole number from 1 to BULK_MAX, or ValueError saying so."""
    if raw is None or raw == "":
        return BULK_DEFAULT
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and _WHOLE.fullmatch(raw):
        value = int(raw)
    if value is None or not 1 <= value <= BULK_MAX:
        raise ValueError(f"limit must be a whole number from 1 to {BULK_MAX}")
    return value


def bulk_retry(
    finder: JobFinder, spool: Spool, *, job: str, q: str, limit: int, by: str
) -> BulkResult:
    """Retry up to ``limit`` failed jobs matching the filter, oldest first."""
    if not finder.index.complete(Status.FAILED):
        raise IndexNotReadyError(
            "the dashboard is still reading the failed jobs; try again shortly"
        )
    refs = finder.matches(JobQuery(status=Status.FAILED, job=job, q=q, sort="oldest"))
    result = BulkResult(matched=len(refs))
    for name, status in refs[: max(0, min(limit, BULK_MAX))]:
        job_id = job_id_of(status, name)
        try:
            job_actions.retry(spool, job_id, by=by, via=VIA)
        except Conflict:
            result.conflicts += 1
        except JobNotFound:
            result.missing += 1
        else:
            result.retried.append(job_id)
    return result


# ------------------------------------------------------------------ submit


class SubmitError(JobspoolError):
    """Field name -> message; "" is the form as a whole."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k or 'form'}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Submission:
    job: str
    method: str
    params: list[Any] | dict[str, Any]
    priority: int = 0
    delay: float | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    unique: dict[str, Any] | None = None  # jobspool.uniquekey's spec, unchecked


def _unique(fields: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any] | None:
    """The unique spec asked for: the API's "unique" object (or key), or the
    form's unique_key, unique_until and unique_for; checked at submit."""
    raw = fields.get("unique")
    if raw is None:
        key = str(fields.get("unique_key") or "").strip()
        if not key:
            return None
        raw = {"key": key, "until": fields.get("unique_until") or "finished"}
        if str(fields.get("unique_for") or "").strip():
            raw["for"] = str(fields["unique_for"]).strip()
    if isinstance(raw, str):
        raw = {"key": raw}
    if not isinstance(raw, dict):
        errors["unique"] = "unique must be an object {key, until, for} or a key"
        return None
    return raw


def _number(
    raw: object, name: str, errors: dict[str, str], *, whole: bool, low: float, high: float
) -> Any:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        if isinstance(raw, bool):
            raise ValueError
        value: float = int(str(raw).strip()) if whole else float(str(raw).strip())
    except ValueError:
        errors[name] = "must be a whole number" if whole else "must be a number"
        return None
    if not math.isfinite(value) or not low <= value <= high:
        errors[name] = f"must be between {low:g} and {high:g}"
        return None
    return value


def parse_params(raw: object) -> list[Any] | dict[str, Any]:
    """JSON text (or an already decoded value from the API) -> list or object."""
    if isinstance(raw, list | dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return []
    if not isinstance(raw, str):
        raise ValueError("params must be a JSON list (positional) or object (keyword)")
    try:
        return params_from_json(raw)
    except InvalidParams as exc:
        raise ValueError(str(exc)) from None


def parse_submission(fields: Mapping[str, Any]) -> Submission:
    """Form fields or API JSON -> Submission, or SubmitError naming each bad field."""
    errors: dict[str, str] = {}
    job = str(fields.get("job") or "").strip()
    method = str(fields.get("method") or "").strip()
    if not job:
        errors["job"] = "choose a job"
    if not method:
        errors["method"] = "choose a method"
    params: list[Any] | dict[str, Any] = []
    try:
        params = parse_params(fields.get("params"))
    except ValueError as exc:
        errors["params"] = str(exc)
    priority = _number(fields.get("priority"), "priority", errors, whole=True, low=-1e6, high=1e6)
    delay = _number(fields.get("delay"), "delay", errors, whole=False, low=0, high=10 * 365 * 86400)
    attempts = _number(
        fields.get("max_attempts"), "max_attempts", errors, whole=True, low=1, high=1000
    )
    timeout = _number(fields.get("timeout"), "timeout", errors, whole=False, low=0.001, high=1e7)
    unique = _unique(fields, errors)
    if errors:
        raise SubmitError(errors)
    return Submission(
        job=job,
        method=method,
        params=params,
        priority=priority or 0,
        delay=delay,
        max_attempts=attempts,
        timeout=timeout,
        unique=unique,
    )


def submit(cfg: Config, spool: Spool, sub: Submission, by: str) -> str:
    """Validate like the CLI, then publish in pending/; returns the new job's id,
    or the id of the job holding its unique key (``jobspool.unique.is_existing``).

    The dashboard never runs a job in its own process, so the ``eager``
    setting does not apply here: the job is always queued for a runner.
    """
    try:
        validate(cfg, sub.job, sub.method, sub.params)
    except NotAllowed as exc:
        spec = cfg.settings.allowed_jobs.get(sub.job)
        where = (
            "job" if spec is None else "method" if sub.method not in spec.allowed_methods else ""
        )
        raise SubmitError({where: str(exc)}) from None
    except InvalidParams as exc:
        raise SubmitError({"params": str(exc)}) from None
    try:
        record = build_job(
            sub.job,
            sub.method,
            sub.params,
            priority=sub.priority,
            delay=sub.delay,
            max_attempts=sub.max_attempts,
            timeout=sub.timeout,
        )
        if sub.unique is not None:
            record = _with_unique(cfg, record, sub.unique)
        return queue_job(cfg, spool, record, by=by, via=VIA)
    except SubmitError:
        raise
    except (InvalidParams, ValidationError) as exc:
        raise SubmitError({"params": str(exc)}) from None
    except JobspoolError as exc:
        raise SubmitError({"": str(exc)}) from None


def _with_unique(cfg: Config, record: Job, asked: dict[str, Any]) -> Job:
    try:
        return record.model_copy(update={"unique": fill_unique(cfg, record, asked)})
    except InvalidParams as exc:
        raise SubmitError({"unique": str(exc)}) from None


# ------------------------------------------------------------------ resubmit


def resubmit(cfg: Config, spool: Spool, job_id: str, raw_params: object, by: str) -> str:
    """Queue a new job like a failed or cancelled one, with edited params
    (JSON text from the form, or a decoded value from the API); returns the
    new job's id. Params are checked as a submission's are, and a bad value
    is a SubmitError on "params"; Conflict and JobNotFound pass through."""
    try:
        params = parse_params(raw_params)
    except ValueError as exc:
        raise SubmitError({"params": str(exc)}) from None
    try:
        view = job_actions.resubmit(spool, job_id, params, config=cfg, by=by, via=VIA)
    except (InvalidParams, ValidationError) as exc:
        raise SubmitError({"params": str(exc)}) from None
    except NotAllowed as exc:
        raise SubmitError({"": str(exc)}) from None
    except (Conflict, JobNotFound):
        raise
    except JobspoolError as exc:
        raise SubmitError({"": str(exc)}) from None
    return view.id
