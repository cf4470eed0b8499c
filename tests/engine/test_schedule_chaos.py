"""Exactly one job per tick with no leader: three runners on two "hosts" (two
bindfs mounts of one spool, distinct JOBSPOOL_HOST) are SIGKILLed and
restarted at random while an ``every: 1s`` schedule runs for ``DURATION``
seconds, at times with no runner alive at all.

Every tick in the window must be queued exactly once: its job (the id made
from the tick) ends completed, no other job of the schedule exists, and no
job ran as a fresh submission twice (the ledger's attempt numbers of each id
never repeat; a second queueing would start again at attempt 1). Ticks that
fell while no runner was alive are caught up (``missed: all`` with a
``catch_up`` longer than the test).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobspool.recurring import Rule, tick_job_id
from tests.conftest import RunnerProcess, SpoolEnv, wait_until
from tests.engine.test_schedules import done_marks, tick_jobs
from tests.support.hosts import bind_mount, start_as
from tests.support.spoolkit import job_files_everywhere, ledger_lines

DURATION = 60.0  # seconds of chaos, as the issue asks
SEED = 20261207
NAME = "chaos"
# Where each of the three runners runs: (host, mount index).
SEATS = (("host-a", 0), ("host-a", 0), ("host-b", 1))


def pause(seconds: float) -> None:
    """Let the chaos run on for a while (bounded: it only watches the clock)."""
    until = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= until, seconds + 5, "the pause to end")


@pytest.fixture
def mounts(env: SpoolEnv, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    with contextlib.ExitStack() as stack:
        env.spool.mkdir(parents=True, exist_ok=True)
        a = stack.enter_context(bind_mount(env.spool, tmp_path / "mnt-a"))
        b = stack.enter_context(bind_mount(env.spool, tmp_path / "mnt-b"))
        try:
            yield a, b
        finally:
            for runner in env.runners:
                runner.kill()


@pytest.mark.timeout(DURATION + 240)
def test_every_tick_queues_exactly_one_job_while_runners_die_at_random(
    env: SpoolEnv, tmp_path: Path, mounts: tuple[Path, Path]
) -> None:
    ledger = tmp_path / "ledger"
    env.write_config(
        schedules={
            NAME: {
                "job": "Ledger",
                "method": "record",
                "params": [str(ledger)],
                "every": "1s",
                "missed": "all",
                "catch_up": "1h",
                "overlap": "allow",
            }
        }
    )
    rng = random.Random(SEED)

    def start(seat: int) -> RunnerProcess:
        host, mount = SEATS[seat]
        return start_as(env, host, "--spool", str(mounts[mount]))

    alive: dict[int, RunnerProcess] = {seat: start(seat) for seat in range(len(SEATS))}
    since_file = env.spool / "schedules" / NAME / "since"
    wait_until(since_file.exists, 60, "the schedule to be seen")
    began = datetime.now(UTC)
    kills = restarts = blackouts = 0
    deadline = time.monotonic() + DURATION
    while time.monotonic() < deadline:
        pause(rng.uniform(0.3, 2.5))
        if alive and rng.random() < 0.7:
            seat = rng.choice(sorted(alive))
            alive.pop(seat).kill()  # SIGKILL
            kills += 1
        if not alive and rng.random() < 0.5:
            blackouts += 1
            pause(rng.uniform(1.0, 3.0))  # no runner anywhere: ticks pile up
        for seat in range(len(SEATS)):
            if seat not in alive and rng.random() < 0.5:
                alive[seat] = start(seat)
                restarts += 1
    ended = datetime.now(UTC)
    for seat in range(len(SEATS)):
        if seat not in alive:
            alive[seat] = start(seat)
    window = list(Rule(None, 1).between(began, ended))
    wanted = {tick_job_id(NAME, t) for t in window}

    def settled() -> bool:
        completed = {e.split(":", 1)[1] for e in tick_jobs(env, NAME) if e.startswith("completed:")}
        return wanted <= completed

    wait_until(settled, 120, "every tick of the window to be queued and completed")
    for runner in alive.values():
        runner.stop()

    everything = tick_jobs(env, NAME)
    ids = Counter(e.split(":", 1)[1] for e in everything)
    in_window = {i for i in ids if i in wanted}
    assert in_window == wanted, sorted(wanted - in_window)[:5]
    twice = [i for i, n in ids.items() if n != 1]
    assert twice == [], twice  # one file per id, in one status directory
    # Ticks outside the window (before it, or after it while the runners
    # finished) are each a tick of the schedule too.
    stamps = {i.rsplit("-", 1)[1] for i in ids}
    assert len(stamps) == len(ids)
    # Nothing from before the schedule first appeared was caught up.
    assert min(stamps) > since_file.read_text().strip()
    runs = Counter(ledger_lines(ledger))
    fresh_twice = [key for key, n in runs.items() if n > 1]
    assert fresh_twice == [], fresh_twice
    assert {job for job, _attempt in runs} >= wanted
    # The runners stop one after another: a tick queued while the last one's
    # slots were full stays pending for the next start, rightly. Only such
    # ticks may wait, and a runner started without the schedule runs them.
    leftovers = {s: n for s, n in job_files_everywhere(env).items() if s != "completed" and n}
    late = leftovers.pop("pending", [])
    assert leftovers == {}, leftovers
    assert not {f.removesuffix(".json") for f in late} & wanted, late
    env.write_config(schedules={})
    assert env.burst().returncode == 0
    leftovers = {s: n for s, n in job_files_everywhere(env).items() if s != "completed" and n}
    assert leftovers == {}, leftovers
    marks = done_marks(env, NAME)
    assert len(marks) >= len(window)
    print(
        f"\nchaos: {DURATION:.0f}s, {len(window)} ticks in the window, {len(ids)} jobs in all, "
        f"{kills} SIGKILLs, {restarts} restarts, {blackouts} blackouts with no runner, "
        f"{sum(runs.values())} runs ({sum(1 for _j, a in runs if a > 1)} reruns of lost attempts)"
    )
