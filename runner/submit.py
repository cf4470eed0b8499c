"""Submitting jobs from Python, and reading them back.

``run_background_job`` validates on the writer's side (allow-list, method,
params bound to the signature and type-checked, per-job overrides within
the allow-list's: a job may ask for a shorter timeout or fewer attempts,
never more) and only then publishes the job through the spool: on any error
it raises a :class:`JobspoolError` subclass and writes nothing. In eager
mode (setting ``eager: true`` or ``JOBSPOOL_EAGER=1``) the job runs at once,
in-process, through the same validation; its record lives in memory for
``get_job``/``wait_for_job``; with ``raise_errors=True`` the exception the
job raised is re-raised in the caller once its failed record is kept.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from jobspool import binding, child, codec, logs, producer, uniquekey
from jobspool import unique as uniquelocks
from jobspool.config import Config
from jobspool.errors import InvalidParams, JobNotFound, JobspoolError, NotAllowed
from jobspool.messages import ChildReport, decode_report
from jobspool.model import Attempt, HistoryEntry, Job, JobView, Outcome, Unique, utcnow
from jobspool.names import hostname, new_id
from jobspool.spool import Spool
from jobspool.states import TERMINAL, Status
from jobspool.unique import Submitted
from jobspool.uniquekey import UniqueSpec

Params = list[Any] | dict[str, Any]

_EAGER: dict[str, JobView] = {}


class WaitTimeout(JobspoolError, TimeoutError):
    """wait_for_job gave up before the job finished."""


def resolve_config(config: Config | str | None = None, spool: str | None = None) -> Config:
    """The config a call names, or finds; loaded once per process while its
    file and environment stay the same (``jobspool.producer``)."""
    if isinstance(config, Config):
        if spool is None:
            return config
        return producer.config(config.path, spool)
    return producer.config(config, spool)


def open_spool(cfg: Config) -> Spool:
    """The config's spool, refused without its marker (``Spool.open``); opened
    once per process while the marker stays the same (``jobspool.producer``)."""
    return producer.spool(cfg)


def _importable(cfg: Config) -> None:
    base = str(cfg.base_dir)
    if base not in sys.path:
        sys.path.insert(0, base)


def job_name_of(job: type | str, cfg: Config) -> str:
    """The allow-list key for a class or a name."""
    if isinstance(job, str):
        return job
    _importable(cfg)
    for name in sorted(cfg.settings.allowed_jobs, key=lambda n: n != job.__name__):
        try:
            if binding.load_class(cfg.class_path(name)) is job:
                return name
        except (ImportError, NotAllowed):
            continue
    raise NotAllowed(f"class {job.__module__}.{job.__qualname__} is not in the allow-list")


def params_from_json(text: str, label: str = "params") -> Params:
    """Params given as JSON text: a list (positional) or an object (keyword)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidParams(f"{label} is not valid JSON: {exc}") from None
    if not isinstance(value, list | dict):
        raise InvalidParams(f"{label} must be a JSON list (positional) or object (keyword)")
    return value


def validate(cfg: Config, name: str, method: str, params: Params) -> None:
    """Allow-list, method, and params against the signature; imports the allowed class."""
    cfg.spec(name, method)
    if not isinstance(params, list | dict):
        raise InvalidParams("params must be a list (positional) or an object (keyword)")
    where = codec.non_finite_at(params)
    if where is not None:
        raise InvalidParams(
            f"{where} is not a finite number: JSON has no NaN or Infinity, "
            "so it cannot be stored; send a number or a string"
        )
    _importable(cfg)
    try:
        binding.check(cfg.class_path(name), method, params)
    except ImportError as exc:
        raise NotAllowed(f"cannot import {cfg.class_path(name)} for {name}: {exc}") from None


def check_limits(cfg: Config, record: Job) -> None:
    """Per-job overrides may lower the allow-list's limits, never raise them
    (a runner applies the lower value anyway; a submitter is told)."""
    name = record.job
    timeout = cfg.timeout(name)
    if record.timeout_seconds is not None and record.timeout_seconds > timeout:
        raise InvalidParams(
            f"timeout {record.timeout_seconds:g}s is more than the allow-list allows "
            f"{name} ({timeout:g}s); a job may ask for less, never more"
        )
    attempts = cfg.retry_policy(name).max_attempts
    if record.max_attempts is not None and record.max_attempts > attempts:
        raise InvalidParams(
            f"max_attempts {record.max_attempts} is more than the allow-list allows "
            f"{name} ({attempts}); a job may ask for fewer, never more"
        )


def build_job(
    name: str,
    method: str,
    params: Params,
    *,
    priority: int = 0,
    delay: float | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    job_id: str | None = None,
) -> Job:
    if delay is not None and delay < 0:
        raise InvalidParams("delay must be zero or more seconds")
    try:
        return Job(
            job=name,
            method=method,
            params=params,
            id=job_id,
            priority=priority,
            not_before=utcnow() + timedelta(seconds=delay) if delay else None,
            max_attempts=max_attempts,
            timeout_seconds=timeout,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidParams(f"{where}: {err['msg']}") from None


def run_background_job(
    job: type | str,
    method: str,
    params: Params | None = None,
    *,
    priority: int = 0,
    delay: float | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    job_id: str | None = None,
    config: Config | str | None = None,
    spool: str | None = None,
    submitted_by: str | None = None,
    via: str = "python",
    raise_errors: bool = False,
    unique: UniqueSpec | dict[str, Any] | None = None,
) -> str:
    """Validate and queue ``job.method(*params)``; returns the job id.

    ``unique`` (``{"key": "customer-{customer}", "until": "finished", "for":
    "10m"}``, or the allow-list entry's when not given; see
    ``jobspool.uniquekey``): while another job holds the filled key, nothing
    is written and that job's id is returned, with ``existing`` set on it
    (the id is a :class:`jobspool.unique.Submitted`, a str).

    Raises NotAllowed or InvalidParams (both JobspoolError) and writes
    nothing when the job may not run as given. In eager mode with
    ``raise_errors`` the job's own exception propagates to the caller (its
    failed record is kept for ``get_job``); it has no effect otherwise.
    """
    cfg = resolve_config(config, spool)
    name = job_name_of(job, cfg)
    params = [] if params is None else params
    validate(cfg, name, method, params)
    record = build_job(
        name,
        method,
        params,
        priority=priority,
        delay=delay,
        max_attempts=max_attempts,
        timeout=timeout,
        job_id=job_id,
    )
    if unique is not None:
        record = record.model_copy(update={"unique": fill_unique(cfg, record, unique)})
    check_limits(cfg, record)
    if cfg.settings.eager:
        return _run_eager(cfg, record, raise_errors=raise_errors)
    return queue_job(cfg, open_spool(cfg), record, by=submitted_by, via=via)


def fill_unique(cfg: Config, record: Job, asked: UniqueSpec | dict[str, Any]) -> Unique:
    """A unique spec filled from a validated record's params; InvalidParams
    naming the key path when the spec or its template does not fit."""
    try:
        spec = asked if isinstance(asked, UniqueSpec) else UniqueSpec.model_validate(asked)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("unique", *err["loc"]))
        raise InvalidParams(f"{where}: {str(err['msg']).removeprefix('Value error, ')}") from None
    params = record.params
    positional = params if isinstance(params, list) else []
    try:
        named = _by_name(cfg, record) if uniquekey.fields_of(spec.key) else {}
        key = uniquekey.render(spec.key, positional, named)
    except ValueError as exc:
        raise InvalidParams(f"unique.key: {exc}") from None
    return Unique(key=key, until=spec.until, for_seconds=spec.for_seconds)


def _by_name(cfg: Config, record: Job) -> dict[str, Any]:
    """The params by parameter name, positional ones bound to the signature."""
    if isinstance(record.params, dict):
        return dict(record.params)
    _importable(cfg)
    try:
        plan = binding.plan(binding.load_class(cfg.class_path(record.job)), record.method)
        return binding.bind_arguments(plan.params, record.params, {})
    except (ImportError, TypeError, NotAllowed):
        return {}


def _queue_unique(
    cfg: Config, spool: Spool, record: Job, *, by: str | None, via: str, note: str | None
) -> Submitted:
    """Take the key's lock, then publish (``jobspool.unique``); or the holder's id."""
    record = record if record.id else record.model_copy(update={"id": new_id()})

    def publish(held: Job) -> str:
        return queue_job(cfg, spool, held, by=by, via=via, note=note, locked=True)

    grace = cfg.settings.unique_grace_seconds
    out = uniquelocks.submit(spool, record, publish, grace=grace)
    if out.existing:
        key = record.unique.key if record.unique else None
        logs.append(cfg.log_dir, "unique_held", job=str(out), key=key, via=via)
    return out


def queue_job(
    cfg: Config,
    spool: Spool,
    record: Job,
    *,
    by: str | None,
    via: str,
    note: str | None = None,
    locked: bool = False,
) -> str:
    """Publish an already validated job for a runner (never eagerly) and log it;
    ``note`` goes on its "submitted" history entry. A job with a unique key
    (its own, or its allow-list entry's) is published only once it holds
    the key's lock (``locked``: it does); else the holder's id is returned."""
    check_limits(cfg, record)
    entry = cfg.settings.allowed_jobs.get(record.job)
    spec = entry.unique if entry is not None else None
    if record.unique is None and spec is not None:
        record = record.model_copy(update={"unique": fill_unique(cfg, record, spec)})
    if record.unique is not None and not locked:
        return _queue_unique(cfg, spool, record, by=by, via=via, note=note)
    try:
        job_id = spool.submit(record, by=by, via=via, note=note)
    except FileNotFoundError:
        # A directory of the spool went away since it was opened (nothing
        # was published: the link into pending/ is what failed, or came
        # before): open it afresh, which checks the marker and makes the
        # layout whole again, and try once more.
        producer.forget(cfg)
        job_id = open_spool(cfg).submit(record, by=by, via=via, note=note)
    except Exception:
        producer.forget(cfg)  # the next submit opens the spool afresh
        raise
    logs.append(
        cfg.log_dir,
        "submitted",
        job=job_id,
        name=f"{record.job}.{record.method}",
        via=via,
        priority=record.priority or None,
    )
    return job_id


def _run_eager(cfg: Config, record: Job, *, raise_errors: bool = False) -> str:
    job_id = record.id or new_id()
    started = utcnow()
    req = child.RunRequest(
        token=job_id,
        job_id=job_id,
        job=record.job,
        method=record.method,
        params=record.params,
        class_path=cfg.class_path(record.job),
        attempt=1,
        max_attempts=1,
        base_dir=str(cfg.base_dir),
    )
    raised: list[BaseException] = []
    report = decode_report(child.execute(req, raised if raise_errors else None))
    _EAGER[job_id] = _eager_view(record, job_id, started, report)
    if raised:
        raise raised[0]
    return job_id


def _eager_view(record: Job, job_id: str, started: datetime, report: ChildReport) -> JobView:
    outcome = Outcome(report.outcome)
    err = report.error
    attempt = Attempt(
        number=1,
        runner="eager",
        host=hostname(),
        started_at=started,
        finished_at=utcnow(),
        outcome=outcome,
        error=err,
    )
    ok = outcome is Outcome.SUCCEEDED
    done = record.model_copy(
        update={
            "id": job_id,
            "created_at": started,
            "attempts": [attempt],
            "result": report.result if ok else None,
            "error": err,
            "history": [HistoryEntry(at=started, action="submitted", via="eager")],
        }
    )
    status = Status.COMPLETED if ok else Status.FAILED
    return JobView(status=status.value, record=done, path="")


def get_job(
    job_id: str, *, config: Config | str | None = None, spool: str | None = None
) -> JobView:
    """The job's current record and status; JobNotFound if it is nowhere."""
    if job_id in _EAGER:
        return _EAGER[job_id]
    return open_spool(resolve_config(config, spool)).get(job_id)


def wait_for_job(
    job_id: str,
    timeout: float = 60.0,
    *,
    config: Config | str | None = None,
    spool: str | None = None,
    poll: float = 0.02,
) -> JobView:
    """Block until the job is completed, failed or cancelled; return its view."""
    if job_id in _EAGER:
        return _EAGER[job_id]
    sp = open_spool(resolve_config(config, spool))
    deadline = time.monotonic() + timeout
    delay = poll
    while True:
        view = sp.find(job_id)
        if view is None and time.monotonic() > deadline:
            raise JobNotFound(f"no job with id {job_id!r}")
        if view is not None and Status(view.status) in TERMINAL:
            return view
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"job {job_id} still {view.status if view else 'unknown'} after {timeout}s"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
