"""The retention in force and what the last purge removed, as the dashboard shows them.

Owns the overview's retention figures: each finished status's retention
from the current config ("7d", or "keep"), whether purged jobs are archived,
and the last purge's summary, read back through
:mod:`jobspool.purgesummary` (untrusted: capped, validated, None when it
cannot be read). Gathering opens no job file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobspool import purgesummary
from jobspool.config import Config
from jobspool.purgesummary import Summary
from jobspool.retention import show_age
from jobspool.spool import Spool

STATUSES = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class RetentionInfo:
    seconds: dict[str, float | None]  # status -> retention; None: kept forever
    archived: bool
    last: Summary | None

    @property
    def policy(self) -> dict[str, str]:
        """status -> "7d" or "keep", as the config spells it at its shortest."""
        return {s: show_age(v) for s, v in self.seconds.items()}

    @property
    def last_at(self) -> datetime | None:
        return self.last.at if self.last is not None else None

    def removed(self, status: str) -> int:
        return self.last.removed.get(status, 0) if self.last is not None else 0

    def total(self, status: str) -> int:
        return self.last.totals.get(status, 0) if self.last is not None else 0

    def to_json(self) -> dict[str, Any]:
        last = self.last
        return {
            "policy": self.policy,
            "archive": self.archived,
            "last_purge": (
                {
                    "at": last.at.isoformat(),
                    "by": last.by,
                    "archived": last.archived,
                    "removed": {s: self.removed(s) for s in STATUSES},
                }
                if last is not None
                else None
            ),
            "purged_total": {s: self.total(s) for s in STATUSES},
        }


def gather(config: Config, spool: Spool) -> RetentionInfo:
    policy = config.settings.retention.policy()
    return RetentionInfo(
        seconds={s.value: policy[s] for s in policy},
        archived=config.archive_dir is not None,
        last=purgesummary.read(spool),
    )
