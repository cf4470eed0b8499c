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


def far_daily(zone: ZoneInfo = BERLIN) -> tuple[datetime, str]:
    """A daily cron half a day away in ``zone``, and its next local fire time."""
    at = (datetime.now(zone) + timedelta(hours=12)).replace(second=0, microsecond=0)
    return at, f"{at.minute} {at.hour} * * *"
