"""``jobspool schedules``: list recurring schedules, or queue one run now.

Reads and acts only through :mod:`jobspool.ticks` (the spool side of
schedules). A name that is not a schedule ends with one line (and "did you
mean" for a near miss), exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from jobspool import submit, ticks
from jobspool.config import Config, did_you_mean, load_config
from jobspool.errors import JobspoolError
from jobspool.model import utcnow
from jobspool.names import default_actor
from jobspool.recurring import ScheduleSpec, show_duration


class UnknownSchedule(JobspoolError):
    """A schedule name that the config does not have."""


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config, {"spool": args.spool})


def find_spec(cfg: Config, name: str) -> ScheduleSpec:
    spec = cfg.settings.schedules.get(name)
    if spec is None:
        known = list(cfg.settings.schedules)
        hint = did_you_mean(name, known) or (
            f" (schedules: {', '.join(sorted(known))})" if known else "; none is configured"
        )
        raise UnknownSchedule(f"no schedule named {name!r} in {cfg.path}{hint}")
    return spec


def when_text(spec: ScheduleSpec) -> str:
    if spec.cron is not None:
        return f'cron "{spec.cron}" {spec.timezone}'
    return f"every {show_duration(spec.every or 0)}"


def _at(when: datetime | None, view: ticks.ScheduleView) -> str:
    if when is None:
        return "never"
    local = when.astimezone(view.spec.rule().zone())
    return f"{local:%Y-%m-%d %H:%M:%S %Z} ({when:%Y-%m-%d %H:%M:%S} UTC)"


def cmd_list(args: argparse.Namespace) -> int:
    cfg = _config(args)
    found = ticks.views(submit.open_spool(cfg), cfg.settings.schedules, utcnow())
    if args.json:
        print(json.dumps([v.to_public() for v in found], indent=2))
        return 0
    if not found:
        print(f"no schedules in {cfg.path}")
        return 0
    for v in found:
        print(f"{v.name}  {v.spec.job}.{v.spec.method}  {when_text(v.spec)}")
        job = f"  job {v.last_job} {v.last_status or 'gone'}" if v.last_job else ""
        print(f"  last: {_at(v.last_tick, v)}{job}")
        print(f"  next: {_at(v.next_tick, v)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    spec = find_spec(cfg, args.name)
    spool = submit.open_spool(cfg)
    print(ticks.run_now(spool, args.name, spec, by=default_actor(), via="cli"))
    return 0


def _location(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="allowed_jobs.yaml to use (default: the one here or above)")
    p.add_argument("--spool", help="spool directory (overrides the config)")


def register(sub: Any) -> None:
    """Add ``schedules`` (and ``schedules run NAME``) to the jobspool parser."""
    p = sub.add_parser(
        "schedules",
        help="list recurring schedules, or queue one run now",
        description="List each schedule with its last and next run (local and UTC) and "
        "its last job's status; `schedules run NAME` queues one run now.",
    )
    _location(p)
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_list)
    actions = p.add_subparsers(dest="action", metavar="{run}")
    run = actions.add_parser("run", help="queue one run of a schedule now; prints the job id")
    run.add_argument("name", help="the schedule's name in allowed_jobs.yaml")
    _location(run)
    run.set_defaults(func=cmd_run)
