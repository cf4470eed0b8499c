"""The pure rules behind pauses, spool-wide slots and rates, with an injected now."""

from __future__ import annotations

import pytest

from jobspool.claimgate import (
    ALL,
    Rate,
    changes,
    fits_here,
    free_slots,
    is_paused,
    next_window,
    parse_rate,
    window_start,
)


def test_a_pause_holds_its_own_name_or_everything_when_the_spool_is_paused() -> None:
    assert is_paused("Export", {"Export"})
    assert not is_paused("Export", {"Import"})
    assert is_paused("Export", {ALL})
    assert not is_paused("Export", set())


@pytest.mark.parametrize(
    ("text", "rate"),
    [("100/m", Rate(100, 60)), ("5/s", Rate(5, 1)), (" 2 / h ", Rate(2, 3600)), (None, None)],
)
def test_rates_are_a_count_per_second_minute_or_hour(text: str | None, rate: Rate | None) -> None:
    assert parse_rate(text) == rate
    if rate is not None:
        assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize("text", ["100", "0/m", "10/d", "-1/s", "1.5/s", "100000000/s", 7, ""])
def test_anything_else_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_windows_are_aligned_to_the_epoch_so_every_host_agrees() -> None:
    assert window_start(1_000_000_059.9, 60) == 1_000_000_020
    assert window_start(1_000_000_080.0, 60) == 1_000_000_080
    assert window_start(7.5, 1) == 7
    assert next_window(1_000_000_059.5, 60) == pytest.approx(20.5)
    assert next_window(3600.0, 3600) == 3600.0


def test_free_slots_are_the_untaken_numbers_below_the_cap_lowest_first() -> None:
    assert free_slots({0, 2}, 4) == [1, 3]
    assert free_slots({0, 1, 2}, 3) == []
    assert free_slots({7}, 2) == [0, 1]  # a number past a lowered cap frees nothing


def test_the_per_runner_cap() -> None:
    assert fits_here(1, 2) and not fits_here(2, 2) and fits_here(99, None)


def test_changes_say_what_was_paused_and_resumed_since_the_last_look() -> None:
    assert changes({"A", "B"}, {"B", "C", ALL}) == (sorted(["C", ALL]), ["A"])
    assert changes(set(), set()) == ([], [])
