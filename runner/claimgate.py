"""May a job be claimed now? The pure decisions behind pauses, slots and rates.

Owns the rules, not the files: what a pause covers, the spool-wide
concurrency a job name may use, the rate written as ``100/m`` and the
window a claim at a given instant counts in. Nothing here reads the clock
or the disk: the instant and what the spool holds are passed in, so every
rule is tested with an injected ``now``. The files are
:mod:`jobspool.control` (pauses), :mod:`jobspool.slots` (spool-wide
concurrency) and :mod:`jobspool.rates` (rates).

Invariants: a paused name (or a paused spool) is never claimed; a claim
needs a free per-runner place, then a spool-wide slot, then a rate token,
in that order (the scarce shared things last, so a job held back by its own
runner's cap never takes a slot or a token it cannot use); windows are
aligned to the epoch, so every host computes the same window for the same
instant (their clocks permitting, see :mod:`jobspool.rates`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

# The name a whole-spool pause is stored under: never a job name (the
# allow-list refuses names starting with "__").
ALL = "__all__"

PERIODS: Mapping[str, int] = {"s": 1, "m": 60, "h": 3600}
_RATE = re.compile(r"\s*(\d{1,9})\s*/\s*([smh])\s*")
MAX_RATE = 100_000  # tokens per window: each is a file


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``limit`` claims per ``period`` seconds, spool-wide."""

    limit: int
    period: int

    def __str__(self) -> str:
        unit = next(u for u, p in PERIODS.items() if p == self.period)
        return f"{self.limit}/{unit}"


def parse_rate(value: object) -> Rate | None:
    """``100/m`` (also /s and /h) as a Rate; None stays None; ValueError otherwise."""
    if value is None or isinstance(value, Rate):
        return value
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("expected a rate such as 100/m (a count per s, m or h)")
    limit = int(match.group(1))
    if not 1 <= limit <= MAX_RATE:
        raise ValueError(f"a rate's count must be from 1 to {MAX_RATE}")
    return Rate(limit, PERIODS[match.group(2)])


def window_start(wall: float, period: int) -> int:
    """The start (epoch seconds) of the window a claim at ``wall`` counts in."""
    return math.floor(wall / period) * period


def next_window(wall: float, period: int) -> float:
    """Seconds from ``wall`` until the next window opens."""
    return window_start(wall, period) + period - wall


def is_paused(name: str, paused: Collection[str]) -> bool:
    """Is ``name`` held by a pause (its own, or the whole spool's)?"""
    return ALL in paused or name in paused


def free_slots(taken: Collection[int], cap: int) -> list[int]:
    """The slot numbers below ``cap`` not taken, lowest first."""
    return [n for n in range(cap) if n not in taken]


def fits_here(running_here: int, per_runner: int | None) -> bool:
    """Room under this runner's own cap for the job name (None: no cap)."""
    return per_runner is None or running_here < per_runner


def changes(before: Collection[str], after: Collection[str]) -> tuple[list[str], list[str]]:
    """(paused, resumed) names between two looks, sorted: each logged once."""
    return sorted(set(after) - set(before)), sorted(set(before) - set(after))
