"""Schedule times chosen from the clock so that no tick can fall, or come
within catch_up, while a test runs: a test that wrote a fixed cron or an
hourly interval would pass or fail by the hour CI happened to run it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")


def recent_daily() -> tuple[datetime, dict[str, str]]:
    """A tick half an hour ago (UTC) and a daily cron that fires at it."""
    tick = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    return tick, {"cron": f"{tick.minute} {tick.hour} * * *"}


def _plain(at: datetime, zone: ZoneInfo) -> bool:
    """True when at's local wall time occurs exactly once that day (no
    daylight-saving change skips or repeats it)."""
    wall = at.replace(tzinfo=None)
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    return first.utcoffset() == second.utcoffset()


def far_daily(zone: ZoneInfo = BERLIN) -> tuple[datetime, str]:
    """A daily cron half a day away in ``zone``, and its next local fire time.

    Counted on the UTC clock and moved on by an hour while its local time is
    one a daylight-saving change skips or repeats: a cron at such a time
    fires at another instant (as Debian cron does) than the one shown here."""
    at = (datetime.now(UTC) + timedelta(hours=12)).replace(second=0, microsecond=0)
    while not _plain(at.astimezone(zone), zone):
        at += timedelta(hours=1)
    local = at.astimezone(zone)
    return local, f"{local.minute} {local.hour} * * *"
