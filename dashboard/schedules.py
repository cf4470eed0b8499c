"""The Schedules page: each recurring schedule's last and next run, and "run now".

Owns nothing on disk: rows come from :func:`jobspool.ticks.views` and a run
is queued by :func:`jobspool.ticks.run_now`, the same spool-side functions
the CLI uses (``jobspool schedules``). The config in force is the
dashboard's, reloaded as it reloads.
"""

from __future__ import annotations

from typing import Any

from jobspool import ticks
from jobspool.dashboard.state import Dashboard
from jobspool.model import utcnow
from jobspool.recurring import ScheduleSpec, show_duration


def rows(dash: Dashboard) -> list[ticks.ScheduleView]:
    return ticks.views(dash.spool, dash.config.settings.schedules, utcnow())


def spec_of(dash: Dashboard, name: str) -> ScheduleSpec | None:
    return dash.config.settings.schedules.get(name)


def run_now(dash: Dashboard, name: str, spec: ScheduleSpec, actor: str) -> str:
    job_id = ticks.run_now(dash.spool, name, spec, by=actor, via="dashboard")
    dash.changed()
    return job_id


def when_text(spec: ScheduleSpec) -> str:
    if spec.cron is not None:
        return f"cron {spec.cron} ({spec.timezone})"
    return f"every {show_duration(spec.every or 0)}"


def to_json(found: list[ticks.ScheduleView]) -> dict[str, Any]:
    return {"schedules": [v.to_public() for v in found]}
