"""Lengths of time as people write them in allowed_jobs.yaml and on the
command line: ``45s``, ``30m``, ``12h``, ``7d``, ``2w`` or a bare number of
seconds.

Owns the one spelling every setting uses (retention ages, schedules'
``every`` and ``catch_up``, unique jobs' ``for``), so that a length written
for one setting means the same anywhere else. Pure functions; the callers
say in their own words which forms they accept (``keep`` for a retention,
whole seconds for a tick) and bound the value.
"""

from __future__ import annotations

import re

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_TEXT = re.compile(r"(\d{1,12}(?:\.\d{1,9})?)\s*([smhdw]?)")


def seconds(value: object) -> float | None:
    """The seconds value names, or None when it is not a length of time.

    A bool is not a length, though Python counts it as a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (found := _TEXT.fullmatch(value.strip().lower())):
        return float(found.group(1)) * UNITS[found.group(2) or "s"]
    return None


def spell(length: float, units: str = "wdhm") -> str:
    """The shortest exact spelling of a length ("7d", "90m", "45s"), in the units given."""
    for unit in units:
        size = UNITS[unit]
        if length >= size and length % size == 0:
            return f"{int(length // size)}{unit}"
    return f"{length:g}s"
