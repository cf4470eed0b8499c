"""The dashboard's view of what holds jobs back, and its pause/resume actions.

Owns what the overview, ``/api/holds`` and /metrics show of pauses,
spool-wide slots and rates, taken from :mod:`jobspool.holds` (the spool
side, the same figures ``jobspool status`` prints), and the dashboard's
pause and resume, made through :mod:`jobspool.pauses` only: names are
checked against the allow-list in force (an unknown one is refused with
the closest allowed name), and who paused is the dashboard's actor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from jobspool import holds, pauses
from jobspool.dashboard.state import Dashboard


@dataclass(frozen=True)
class HoldsView:
    holds: holds.Holds
    names: list[str]  # every allowed job name, for a Pause/Resume button each

    @property
    def spool_paused(self) -> bool:
        return self.holds.pauses.spool_paused

    def paused(self, name: str) -> bool:
        return name in self.holds.pauses.by_name

    def to_json(self) -> dict[str, Any]:
        return {**self.holds.to_json(), "names": self.names}


def gather(dash: Dashboard) -> HoldsView:
    config = dash.config
    found = holds.gather(dash.spool, config, time.time())
    return HoldsView(found, sorted(config.settings.allowed_jobs))


def pause(dash: Dashboard, names: list[str], actor: str) -> list[str]:
    """Pause names (none: the spool); NotAllowed for a name not in the allow-list."""
    checked = pauses.check_names(dash.config, names)
    pauses.pause(dash.spool, checked, by=actor, via="dashboard")
    return checked


def resume(dash: Dashboard, names: list[str]) -> list[str]:
    checked = pauses.check_names(dash.config, names)
    pauses.resume(dash.spool, checked)
    return checked
