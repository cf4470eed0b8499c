"""Submitting many jobs at once: validate them all, publish them with one flush.

Owns ``run_background_jobs`` and the batch file format that ``runjob
--batch`` and the dashboard's batch endpoint read: one JSON object per job,
with the keys of ``run_background_job`` (``job``, ``method``, ``params``,
``priority``, ``delay``, ``max_attempts``, ``timeout``, ``job_id``).

Invariants:

1. All or nothing before the disk: every job is validated (allow-list,
   method, params against the signature, overrides within the allow-list)
   before the first byte is written; an error names the job's position
   (``jobs[3].params``, or ``FILE:4`` for a file) and nothing is written.
2. All or nothing on the disk, as far as the protocol allows:
   :meth:`Spool.submit_many` publishes the batch with one group commit, and
   on an error withdraws what it published, except jobs a runner already
   took, which :class:`jobspool.errors.NotPublished` names.
3. Unique jobs are refused in a batch: a unique key may turn away one job
   of it, and a batch is published whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jobspool.config import Config
from jobspool.errors import InvalidParams, JobspoolError
from jobspool.model import Job
from jobspool.spool import Spool
from jobspool.submit import (
    build_job,
    check_limits,
    job_name_of,
    open_spool,
    resolve_config,
    run_background_job,
    validate,
)

KEYS = ("job", "method", "params", "priority", "delay", "max_attempts", "timeout", "job_id")
MAX_BATCH = 100_000  # jobs in one call: bounded, as anything read from a file


def run_background_jobs(
    jobs: Iterable[Mapping[str, Any]],
    *,
    config: Config | str | None = None,
    spool: str | None = None,
    submitted_by: str | None = None,
    via: str = "python",
) -> list[str]:
    """Validate and queue many jobs; returns their ids in the order given.

    Each item is a mapping with the keys of :func:`run_background_job`
    (``job`` and ``method`` required). Raises InvalidParams or NotAllowed
    naming the item (``jobs[3]: ...``) and writes nothing when any item
    may not run as given. In eager mode the jobs run one after the other.
    """
    cfg = resolve_config(config, spool)
    items = list(jobs)
    labels = [f"jobs[{i}]" for i in range(len(items))]
    return submit_labelled(cfg, items, labels, submitted_by=submitted_by, via=via)


def submit_labelled(
    cfg: Config,
    items: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    *,
    submitted_by: str | None = None,
    via: str,
    spool: Spool | None = None,
) -> list[str]:
    """run_background_jobs with each item's name for errors (``FILE:4``),
    into ``spool`` if given (a dashboard's own), else the config's."""
    if len(items) > MAX_BATCH:
        raise InvalidParams(f"a batch holds at most {MAX_BATCH} jobs; this one has {len(items)}")
    if cfg.settings.eager:
        return [
            run_background_job(**_arguments(item, label), config=cfg, via=via)
            for item, label in zip(items, labels, strict=True)
        ]
    records = [_record(cfg, item, label) for item, label in zip(items, labels, strict=True)]
    if not records:
        return []
    target = spool if spool is not None else open_spool(cfg)
    return target.submit_many(records, by=submitted_by, via=via)


def check_one(cfg: Config, item: Mapping[str, Any], label: str) -> None:
    """Validate one job of a batch as submitting it would; writes nothing."""
    _record(cfg, item, label)


def _arguments(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InvalidParams(f"{where}: each job is an object with job, method and params")
    unknown = sorted(set(item) - set(KEYS))
    if unknown:
        raise InvalidParams(f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(KEYS)}")
    for key in ("job", "method"):
        if not isinstance(item.get(key), str):
            raise InvalidParams(f"{where}.{key}: required, a string")
    return dict(item)


def _record(cfg: Config, item: Mapping[str, Any], where: str) -> Job:
    args = _arguments(item, where)
    try:
        name = job_name_of(args["job"], cfg)
        spec = cfg.spec(name, args["method"])
        if spec.unique is not None:
            raise InvalidParams(
                f"{name} is a unique job (allowed_jobs.{name}.unique): submit it with "
                "run_background_job, since a batch is published whole or not at all"
            )
        params = args.get("params")
        params = [] if params is None else params
        validate(cfg, name, args["method"], params)
        record = build_job(
            name,
            args["method"],
            params,
            priority=args.get("priority") or 0,
            delay=args.get("delay"),
            max_attempts=args.get("max_attempts"),
            timeout=args.get("timeout"),
            job_id=args.get("job_id"),
        )
        check_limits(cfg, record)
    except JobspoolError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    return record


def read_lines(lines: Sequence[str], source: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The jobs of a batch file, one JSON object per line (blank lines and
    lines starting with # skipped), and each one's label ``source:line``;
    InvalidParams naming the line of the first that is not an object."""
    jobs: list[dict[str, Any]] = []
    labels: list[str] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{source}:{number}"
        try:
            item = json.loads(text)
        except ValueError as exc:
            raise InvalidParams(f"{where}: not JSON ({exc.args[0]})") from None
        if not isinstance(item, dict):
            raise InvalidParams(f"{where}: each line is one JSON object")
        jobs.append(item)
        labels.append(where)
        if len(jobs) > MAX_BATCH:
            raise InvalidParams(f"{where}: a batch holds at most {MAX_BATCH} jobs")
    return jobs, labels
