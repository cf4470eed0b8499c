"""Which ticks are due (jobspool.recurring), with an injected now: cron and
every, the missed policies within catch_up, and both daylight-saving changes
of Europe/Berlin against cronsim's own firing times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from jobspool.model import is_valid_id
from jobspool.recurring import (
    ON_TIME_SECONDS,
    Rule,
    ScheduleSpec,
    due_ticks,
    parse_duration,
    run_now_id,
    tick_job_id,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, *clock: int) -> datetime:
    """A UTC instant; clock is hour, minute, second (missing ones are 0)."""
    hour, minute, second = (*clock, 0, 0, 0)[:3]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def spec(**fields: object) -> ScheduleSpec:
    return ScheduleSpec.model_validate({"job": "J", "method": "m", **fields})


def test_durations() -> None:
    assert [parse_duration(v) for v in ("30s", "5m", "1h", "1d", "45", 7)] == [
        30,
        300,
        3600,
        86400,
        45,
        7,
    ]
    for bad in ("0s", "1y", "-5s", "", "1.5h", True, None):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_every_is_aligned_to_the_epoch() -> None:
    rule = Rule(None, 30)
    start = utc(2026, 12, 7, 10, 0, 7)
    got = list(rule.between(start, start + timedelta(seconds=90)))
    assert got == [
        utc(2026, 12, 7, 10, 0, 30),
        utc(2026, 12, 7, 10, 1),
        utc(2026, 12, 7, 10, 1, 30),
    ]
    # A tick exactly at start is not after it; one exactly at the end is in.
    assert list(rule.between(utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 30))) == [
        utc(2026, 1, 1, 0, 0, 30)
    ]
    # Every runner computes the same ticks, wherever it starts looking.
    assert Rule(None, 86400).next_after(utc(2026, 5, 5, 13)) == utc(2026, 5, 6)


def test_cron_in_utc() -> None:
    rule = Rule("30 2 * * *", None, "UTC")
    got = list(rule.between(utc(2026, 6, 1), utc(2026, 6, 3, 12)))
    assert got == [utc(2026, 6, 1, 2, 30), utc(2026, 6, 2, 2, 30), utc(2026, 6, 3, 2, 30)]


def test_missed_all_queues_every_tick_within_catch_up() -> None:
    s = spec(every="10s", missed="all", catch_up="1m")
    now = utc(2026, 1, 1, 12, 0, 5)
    # Nothing seen yet: the ticks of the last minute.
    assert due_ticks(s, now, None) == [utc(2026, 1, 1, 11, 59, 10 * i) for i in range(1, 6)] + [
        utc(2026, 1, 1, 12)
    ]
    # Settled up to 11:59:40: only the later ones.
    after = utc(2026, 1, 1, 11, 59, 40)
    assert due_ticks(s, now, after) == [utc(2026, 1, 1, 11, 59, 50), utc(2026, 1, 1, 12)]
    # Settled before the window: the window bounds it.
    assert len(due_ticks(s, now, utc(2026, 1, 1))) == 6
    # At most limit, oldest first: the rest at the next call.
    assert due_ticks(s, now, None, limit=2) == [
        utc(2026, 1, 1, 11, 59, 10),
        utc(2026, 1, 1, 11, 59, 20),
    ]


def test_missed_latest_queues_the_newest_tick_within_catch_up() -> None:
    s = spec(cron="0 * * * *", missed="latest", catch_up="3h")
    now = utc(2026, 1, 1, 12, 20)
    assert due_ticks(s, now, utc(2026, 1, 1, 8)) == [utc(2026, 1, 1, 12)]
    assert due_ticks(s, now, utc(2026, 1, 1, 12)) == []
    # Down for longer than catch_up: nothing to catch up.
    assert due_ticks(spec(cron="0 3 * * *", missed="latest", catch_up="1h"), now, None) == []


def test_missed_skip_queues_only_a_tick_on_time() -> None:
    s = spec(cron="0 * * * *", missed="skip", catch_up="3h")
    on_time = utc(2026, 1, 1, 12, 0, 30)
    assert due_ticks(s, on_time, utc(2026, 1, 1, 9)) == [utc(2026, 1, 1, 12)]
    late = utc(2026, 1, 1, 12) + timedelta(seconds=ON_TIME_SECONDS + 1)
    assert due_ticks(s, late, utc(2026, 1, 1, 9)) == []


def _cronsim_ticks(expr: str, start: datetime, end: datetime) -> list[datetime]:
    out: list[datetime] = []
    for local in CronSim(expr, start.astimezone(BERLIN)):
        tick = local.astimezone(UTC)
        if tick > end:
            return out
        out.append(tick)
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Spring forward, 29 March 2026: 02:30 does not exist; it fires once,
        # right after the gap (03:00 CEST = 01:00 UTC).
        (utc(2026, 3, 28, 12), [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]),
        # Fall back, 25 October 2026: 02:30 happens twice; it fires once, at
        # the first (02:30 CEST = 00:30 UTC).
        (utc(2026, 10, 24, 12), [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]),
    ],
)
def test_berlin_daylight_saving_changes_fire_as_debian_cron(
    start: datetime, expected: list[datetime]
) -> None:
    rule = Rule("30 2 * * *", None, "Europe/Berlin")
    end = start + timedelta(days=2)
    got = list(rule.between(start, end))
    assert got == expected
    assert got == _cronsim_ticks("30 2 * * *", start, end)
    s = spec(cron="30 2 * * *", timezone="Europe/Berlin", missed="all", catch_up="7d")
    assert due_ticks(s, end, start) == expected


@pytest.mark.parametrize("expr", ["0 * * * *", "*/20 * * * *", "15 1-4 * * *"])
@pytest.mark.parametrize("day", [utc(2026, 3, 28, 20), utc(2026, 10, 24, 20)])
def test_ticks_across_both_changes_match_cronsim(expr: str, day: datetime) -> None:
    end = day + timedelta(hours=10)
    got = list(Rule(expr, None, "Europe/Berlin").between(day, end))
    assert got == _cronsim_ticks(expr, day, end)
    assert len(set(got)) == len(got)


def test_a_look_started_inside_the_repeated_hour_never_goes_back() -> None:
    rule = Rule("30 2 * * *", None, "Europe/Berlin")
    # 01:10 UTC is 02:10 CET, the second pass of 02:xx: 02:30 CEST (00:30
    # UTC) is already behind; the next tick is the next day's.
    inside = utc(2026, 10, 25, 1, 10)
    assert rule.next_after(inside) == utc(2026, 10, 26, 1, 30)


def test_tick_ids_are_job_ids_and_run_now_ids_never_clash() -> None:
    tick = utc(2026, 12, 7, 2, 30)
    tid = tick_job_id("nightly-report", tick)
    assert tid == "sched-nightly-report-20261207T023000Z"
    assert is_valid_id(tid)
    rid = run_now_id("x" * 64, "20261207-023000-000000-1a2b3c4d")
    assert is_valid_id(rid)
    assert not rid.startswith("sched-")
    assert is_valid_id(tick_job_id("x" * 64, tick))


def test_spec_needs_exactly_one_timing() -> None:
    with pytest.raises(ValueError, match="exactly one of cron"):
        spec()
    with pytest.raises(ValueError, match="exactly one of cron"):
        spec(cron="* * * * *", every="1m")
    with pytest.raises(ValueError, match="five fields"):
        spec(cron="0 * * * * *")
