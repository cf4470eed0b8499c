"""What the last purge removed: ``purge/.summary.json``, written and read back.

Owns the small summary a purge leaves for people (the dashboard's overview,
its JSON API and /metrics): when the last purge that removed anything ran,
who ran it, what it removed per status, and the totals since the spool
began (``jobspool_purged_total``). It is a convenience, not part of the
protocol: written by rename over the old one (never partial), not fsynced;
a lost or unreadable summary reads as none and the totals start again. Two
purges that finish at the same instant may lose one's increment.

Invariants: what is read is untrusted: capped at :data:`MAX_BYTES`, read
without following a link, validated by a strict model with bounded
numbers; anything else reads as None, never raises.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobspool import purge
from jobspool.errors import InvalidJobFile
from jobspool.fsops import NotRegularFile
from jobspool.model import utcnow
from jobspool.spool import Spool
from jobspool.states import TERMINAL

NAME = ".summary.json"
MAX_BYTES = 8192
MAX_COUNT = 10**15
STATUSES = tuple(sorted(s.value for s in TERMINAL))


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime
    by: str = Field(max_length=200)
    archived: bool = False
    removed: dict[str, int] = Field(default_factory=dict)
    totals: dict[str, int] = Field(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        for counts in (self.removed, self.totals):
            for status, n in counts.items():
                if status not in STATUSES or not 0 <= n <= MAX_COUNT:
                    raise ValueError(f"not a count of purged jobs: {status!r}: {n!r}")


def path(spool: Spool) -> str:
    return os.path.join(spool.root_str, purge.AREA, NAME)


def read(spool: Spool) -> Summary | None:
    """The last summary, or None (none yet, or not one that can be trusted)."""
    try:
        data = spool.ops.read_regular_stat(path(spool), MAX_BYTES)[0]
    except (OSError, NotRegularFile, InvalidJobFile):
        return None
    if len(data) > MAX_BYTES:
        return None
    try:
        return Summary.model_validate_json(data)
    except (ValidationError, ValueError):
        return None


def record(spool: Spool, removed: dict[str, int], *, by: str, archived: bool) -> Summary:
    """Add a purge's counts to the totals and write the new summary."""
    before = read(spool)
    totals = dict(before.totals) if before is not None else {}
    for status, n in removed.items():
        totals[status] = min(MAX_COUNT, totals.get(status, 0) + n)
    summary = Summary(
        at=utcnow(), by=by[:200], archived=archived, removed=dict(removed), totals=totals
    )
    folder = purge.area(spool)
    tmp = os.path.join(folder, f".summary.{secrets.token_hex(6)}.tmp")
    spool.ops.write_new(tmp, summary.model_dump_json().encode(), durable=False)
    try:
        spool.ops.replace(tmp, path(spool))
    except OSError:
        spool.ops.unlink_quiet(tmp)
        raise
    return summary
