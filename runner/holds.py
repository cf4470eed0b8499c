"""What holds pending jobs back: pauses, spool-wide slots, rate windows.

Owns the summary that ``jobspool status``, the dashboard's overview, its
JSON API and /metrics show, gathered from the spool-side modules alone
(:mod:`jobspool.pauses`, :mod:`jobspool.slots`, :mod:`jobspool.rates`), never
from a runner's memory. Reading never raises for what the spool holds:
files that are not valid are counted under ``refused``, never trusted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from jobspool import pauses, rates, slots
from jobspool.claimgate import ALL
from jobspool.config import Config
from jobspool.spool import Spool


@dataclass(frozen=True)
class Limit:
    """One job name's spool-wide figures (None where it has no such limit)."""

    name: str
    slots_in_use: int | None = None
    slots_global: int | None = None
    rate: str | None = None
    rate_used: int | None = None  # claims counted in the current window

    def to_json(self) -> dict[str, Any]:
        return {
            "slots_in_use": self.slots_in_use,
            "global": self.slots_global,
            "rate": self.rate,
            "rate_used": self.rate_used,
        }


@dataclass(frozen=True)
class Holds:
    pauses: pauses.Pauses
    limits: list[Limit] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "paused": self.pauses.to_json(),
            "limits": {lim.name: lim.to_json() for lim in self.limits},
        }


def gather(spool: Spool, config: Config, wall: float | None = None) -> Holds:
    wall = time.time() if wall is None else wall
    return Holds(pauses.current(spool), limits_of(spool, config, wall))


def limits_of(spool: Spool, config: Config, wall: float) -> list[Limit]:
    """Figures for every allowed name with a global cap or a rate."""
    out = []
    found = slots.scan(spool)
    for name, spec in sorted(config.settings.allowed_jobs.items()):
        if spec.global_cap is None and spec.rate is None:
            continue
        lim = Limit(name=name, slots_global=spec.global_cap)
        if spec.global_cap is not None:
            lim = replace(lim, slots_in_use=found.in_use(name))
        if spec.rate is not None:
            used = rates.used(spool, name, spec.rate, wall)
            lim = replace(lim, rate=str(spec.rate), rate_used=used)
        out.append(lim)
    return out


def text_lines(holds: Holds) -> list[str]:
    """The lines ``jobspool status`` prints."""
    p = holds.pauses
    lines = []
    spool = p.by_name.get(ALL)
    if spool is not None:
        lines.append(f"paused: whole spool  (by {spool.by or '?'} at {spool.at.isoformat()})")
    else:
        lines.append(f"paused: {len(p.names)} job name{'s' if len(p.names) != 1 else ''}")
    for name in p.names:
        req = p.by_name[name]
        lines.append(f"  {name}  by {req.by or '?'} at {req.at.isoformat()}")
    for file, reason in sorted(p.refused.items()):
        lines.append(f"  refused control/{file}: {reason}")
    for lim in holds.limits:
        parts = []
        if lim.slots_global is not None:
            parts.append(f"slots {lim.slots_in_use or 0}/{lim.slots_global}")
        if lim.rate is not None:
            parts.append(f"rate {lim.rate_used or 0} of {lim.rate} this window")
        lines.append(f"limit: {lim.name}  " + "  ".join(parts))
    return lines
