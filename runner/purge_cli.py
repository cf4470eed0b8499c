"""``jobspool purge``: remove finished jobs on demand, as retention does.

Owns the command's options and output only: which jobs are due is
:mod:`jobspool.retention`'s rule, and each job is removed (or archived)
whole by :mod:`jobspool.purge`, which also finishes first what a purge cut
short left in purge/. The command takes no purge lease (it is no runner
with a heartbeat): it is safe beside a purging runner, since each job is
taken by one rename that only one of them can win.

Without ``--older-than`` each status keeps its retention from
allowed_jobs.yaml (a status set to ``keep`` is left alone). Prints the count
per status; ``--dry-run`` counts and removes nothing.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from jobspool import purgesummary
from jobspool.config import Config
from jobspool.errors import JobspoolError
from jobspool.model import NAME_PATTERN
from jobspool.names import default_actor
from jobspool.purge import Purger, Tally, scan
from jobspool.retention import Candidate, Policy, parse_age, select
from jobspool.spool import Spool
from jobspool.states import TERMINAL, Status

STATUSES = [s.value for s in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)]
BATCH = 500


class PurgeUsage(JobspoolError):
    """A purge option that cannot be used."""


def register(sub: Any) -> None:
    from jobspool.cli import _add_location

    p = sub.add_parser(
        "purge",
        help="remove finished jobs past their retention, with their logs",
        description="Remove finished jobs (record, log and side files) past the retention "
        "in allowed_jobs.yaml, or older than --older-than; with retention.archive_dir "
        "they are moved there. Prints the count per status.",
    )
    _add_location(p)
    p.add_argument(
        "--status",
        action="append",
        choices=STATUSES,
        help="only this status (repeat for several; default: all finished statuses)",
    )
    p.add_argument(
        "--older-than",
        metavar="AGE",
        help="finished at least this long ago (e.g. 7d, 12h, 30m, 0s), instead of the retention",
    )
    p.add_argument("--job", metavar="NAME", help="only jobs of this allow-list name")
    p.add_argument("--dry-run", action="store_true", help="count what would go; remove nothing")
    p.set_defaults(func=cmd_purge)


def policy_of(args: argparse.Namespace, cfg: Config) -> Policy:
    """The retention to apply: --older-than for every chosen status, else the config's."""
    chosen = {Status(s) for s in (args.status or STATUSES)}
    if args.older_than is not None:
        try:
            age = parse_age(args.older_than)
        except ValueError as exc:
            raise PurgeUsage(f"--older-than: {exc}") from None
        base: Policy = dict.fromkeys(TERMINAL, age)
    else:
        base = cfg.settings.retention.policy()
    return {s: (base.get(s) if s in chosen else None) for s in TERMINAL}


def due(spool: Spool, policy: Policy, now: float, job: str | None) -> list[Candidate]:
    found: list[Candidate] = []
    for status in (Status(s) for s in STATUSES):
        found += select(list(scan(spool, status, policy, now, job=job)), policy, now, job=job)
    return found


def cmd_purge(args: argparse.Namespace) -> int:
    from jobspool.cli import _config
    from jobspool.submit import open_spool

    if args.job is not None and not NAME_PATTERN.fullmatch(args.job):
        raise PurgeUsage(f"--job: {args.job!r} is not a job name (letters, digits, _)")
    cfg = _config(args)
    policy = policy_of(args, cfg)
    spool = open_spool(cfg)
    try:
        tally = _purge(args, cfg, spool, policy)
    except OSError as exc:
        # Most often the wrong user: the finished directories are the runner's.
        where = f" ({exc.filename})" if exc.filename else ""
        raise PurgeUsage(
            f"cannot purge {spool.root}: {exc.strerror or exc}{where}; "
            "run as the runner's user (what was purged stays purged; run again to finish)"
        ) from None
    _report(args, cfg, policy, tally)
    return 0


def _purge(args: argparse.Namespace, cfg: Config, spool: Spool, policy: Policy) -> Tally:
    candidates = due(spool, policy, time.time(), args.job)
    tally = Tally()
    if args.dry_run:
        for c in candidates:
            tally.add(c.status)
        return tally
    purger = Purger(spool, cfg.archive_dir)
    tally.merge(purger.resume())
    for start in range(0, len(candidates), BATCH):
        tally.merge(purger.purge(candidates[start : start + BATCH]))
    if tally.total:
        by = f"jobspool purge ({default_actor()})"
        purgesummary.record(spool, tally.removed, by=by, archived=cfg.archive_dir is not None)
    return tally


def _report(args: argparse.Namespace, cfg: Config, policy: Policy, tally: Tally) -> None:
    from jobspool.retention import show_age

    verb = "would remove" if args.dry_run else "archived" if cfg.archive_dir else "removed"
    for status in STATUSES:
        keep = policy.get(Status(status))
        rule = f"older than {show_age(keep)}" if keep is not None else "kept (not selected)"
        print(f"{status:<10} {verb} {tally.removed.get(status, 0):>7}   ({rule})")
    if tally.kept:
        print(f"{tally.kept} job(s) were being moved by a person and were left in place")
    where = f" to {cfg.archive_dir}" if cfg.archive_dir and not args.dry_run else ""
    total = tally.total
    print(
        f"{verb} {total} job{'s' if total != 1 else ''}{where}"
        + (" (dry run)" if args.dry_run else "")
    )
