"""``jobspool pause [JOB ...]`` and ``jobspool resume [JOB ...]``.

Owns the two commands' options and output only: what a pause is on disk is
:mod:`jobspool.pauses`, and the names are checked against the allow-list
there (an unknown one is one line of error with the closest allowed name,
and nothing is written). With no names the whole spool is paused or
resumed; resuming the spool leaves names paused one by one paused.
"""

from __future__ import annotations

import argparse
from typing import Any

from jobspool import pauses
from jobspool.names import default_actor


def register(sub: Any) -> None:
    from jobspool.cli import _add_location

    for name, verb, func in (
        ("pause", "Stop claiming", cmd_pause),
        ("resume", "Claim again", cmd_resume),
    ):
        p = sub.add_parser(
            name,
            help=f"{name} job names, or the whole spool",
            description=f"{verb} jobs of these names (allow-list keys), or of the whole "
            "spool with no names, on every runner within a poll period. Paused jobs stay "
            "pending; running attempts finish.",
        )
        _add_location(p)
        p.add_argument("jobs", nargs="*", metavar="JOB", help="job names (none: the whole spool)")
        p.set_defaults(func=func)


def _what(names: list[str]) -> str:
    return ", ".join(names) if names else "the whole spool"


def cmd_pause(args: argparse.Namespace) -> int:
    from jobspool.cli import _config
    from jobspool.submit import open_spool

    cfg = _config(args)
    names = pauses.check_names(cfg, args.jobs)
    pauses.pause(open_spool(cfg), names, by=default_actor(), via="cli")
    print(f"paused: {_what(names)}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from jobspool.cli import _config
    from jobspool.submit import open_spool

    cfg = _config(args)
    names = pauses.check_names(cfg, args.jobs)
    spool = open_spool(cfg)
    pauses.resume(spool, names)
    print(f"resumed: {_what(names)}")
    left = pauses.current(spool)
    if not names and left.names:
        print(f"still paused by name: {', '.join(left.names)}")
    return 0
