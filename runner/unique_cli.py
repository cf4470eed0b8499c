"""The command line of unique jobs: ``runjob --unique``, ``jobspool unique``,
and the lines ``jobspool show`` prints about a job's key.

Owns the options and the output only: what a key means is
:mod:`jobspool.uniquekey`'s, the locks are :mod:`jobspool.unique`'s.
``jobspool unique`` lists every lock in unique/ with its key, job, window
and expiry, and whether it still holds (a lock past its window is listed
as stale until a runner's sweep or the next submitter removes it).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from jobspool import submit, timetext, unique
from jobspool.errors import InvalidParams
from jobspool.model import JobView, utcnow
from jobspool.spool import Spool
from jobspool.uniquekey import UNTILS


def add_submit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--unique",
        metavar="KEY",
        help="unique key template over the params, e.g. customer-{customer} or {0}: "
        "while a job holds it, print that job's id and write nothing",
    )
    p.add_argument(
        "--unique-until",
        choices=UNTILS,
        help="when the key is released (default finished)",
    )
    p.add_argument("--unique-for", metavar="DURATION", help="longest hold, e.g. 10m (default 1h)")


def asked(args: argparse.Namespace) -> dict[str, Any] | None:
    """The --unique options as a spec, None without --unique."""
    if args.unique is None:
        if args.unique_until or args.unique_for:
            raise InvalidParams("--unique-until and --unique-for need --unique KEY")
        return None
    spec: dict[str, Any] = {"key": args.unique}
    if args.unique_until:
        spec["until"] = args.unique_until
    if args.unique_for:
        spec["for"] = args.unique_for
    return spec


def say_existing(job_id: str) -> None:
    if unique.is_existing(job_id):
        print(f"unique key held by job {job_id}: nothing queued", file=sys.stderr)


def holds_lock(spool: Spool, view: JobView) -> bool | None:
    return unique.holder(spool, view.record) if view.record.unique else None


def show_line(spool: Spool, view: JobView) -> str | None:
    key = view.record.unique
    if key is None:
        return None
    held = "holds the lock" if unique.holder(spool, view.record) else "does not hold the lock"
    return f"unique:    {key.key}  (until {key.until}, for {key.for_seconds}s; {held})"


def register(sub: Any) -> None:
    from jobspool.cli import _add_location

    p = sub.add_parser(
        "unique",
        help="list the unique keys held, with their job, window and expiry",
        description="List the locks in the spool's unique/ directory: key, job, until, "
        "expiry, and whether each still holds its key.",
    )
    _add_location(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_unique)


def cmd_unique(args: argparse.Namespace) -> int:
    from jobspool.cli import _config

    cfg = _config(args)
    spool = submit.open_spool(cfg)
    found = unique.listing(spool, cfg.settings.unique_grace_seconds)
    if args.json:
        print(json.dumps([unique.as_json(seen, v) for seen, v in found], indent=2))
        return 0
    now = utcnow()
    for seen, verdict in found:
        lock = seen.lock
        if lock is None:
            print(f"{seen.name}  not a lock: {seen.problem}")
            continue
        state = "held" if verdict.held else f"stale ({verdict.why})"
        expires = timetext.local_and_relative(unique.expiry(lock), now)
        print(f"{lock.key}  job {lock.job}  until {lock.until}  expires {expires}  {state}")
    if not found:
        print("no unique keys held")
    return 0
