"""One purging runner per spool: two runners (on one host, and as two hosts) share a
spool; only the lease holder purges, and the other takes over once the holder is
killed (by its free lock and gone pid on one host, by its heartbeat's lease across
hosts)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from jobspool.leases import Lease
from jobspool.purgelease import PurgeLease
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import RunnerProcess, SpoolEnv, wait_until
from tests.support.finished import make_finished, summary, where
from tests.support.hosts import start_as, wait_registered

DAY = 86400.0


def holder(spool: Spool) -> str | None:
    return PurgeLease(spool, 3.0).holder()[1]


def purgers(env: SpoolEnv) -> set[str]:
    """Runner ids that logged a purge."""
    text = (env.spool / "logs" / "background_jobs.log").read_text(errors="replace")
    return set(re.findall(r"\bpurged\b.*?\brunner=(\S+)", text))


def purge_round(env: SpoolEnv, spool: Spool, n: int) -> list[str]:
    old = time.time() - 2 * DAY
    ids = [make_finished(spool, Status.COMPLETED, old, side_files=False) for _ in range(n)]
    wait_until(lambda: not any(where(spool, j) for j in ids), 30, "the old jobs to be purged")
    return ids


def start(env: SpoolEnv, host: str | None) -> RunnerProcess:
    return start_as(env, host) if host else env.start_runner()


@pytest.mark.parametrize("hosts", [(None, None), ("host-a", "host-b")], ids=["one-host", "two"])
def test_only_the_lease_holder_purges_and_the_other_takes_over_when_it_dies(
    env: SpoolEnv, hosts: tuple[str | None, str | None]
) -> None:
    env.write_config(retention={"completed": "1d", "check_seconds": 0.2})
    spool = Spool(env.spool, durable=False)
    runners = [start(env, h) for h in hosts]
    ids = {wait_registered(env.spool, r.pid): r for r in runners}
    first = wait_until(lambda: holder(spool), 20, "a runner to take the purge lease")
    assert first in ids
    for _ in range(2):
        purge_round(env, spool, 30)
        assert summary(spool).by == first
        assert holder(spool) == first
    assert purgers(env) == {first}
    ids[first].kill()
    (other,) = set(ids) - {first}
    took = time.monotonic()
    wait_until(lambda: holder(spool) == other, 30, "the other runner to take the lease over")
    if hosts[0] is None:
        # On one host a free lock and a gone pid prove death at once; across
        # hosts only the heartbeat's lease (3 s here) does.
        assert time.monotonic() - took < 3.0
    purge_round(env, spool, 30)
    assert summary(spool).by == other
    assert purgers(env) == {first, other}


def test_a_stopped_runner_gives_the_lease_up(env: SpoolEnv) -> None:
    env.write_config(retention={"completed": "1d", "check_seconds": 0.2})
    spool = Spool(env.spool, durable=False)
    runner = env.start_runner()
    me = wait_registered(env.spool, runner.pid)
    wait_until(lambda: holder(spool) == me, 20, "the runner to take the purge lease")
    assert runner.stop() == 0
    assert not Path(PurgeLease(spool, 3.0).path).exists()


def test_a_lease_that_is_not_a_lease_is_replaced_after_the_lease_time(env: SpoolEnv) -> None:
    env.write_config(retention={"completed": "1d", "check_seconds": 0.2})
    spool = Spool(env.spool, durable=False)
    lease = PurgeLease(spool, 3.0)
    Path(lease.path).write_bytes(b"\xff not json")
    runner = env.start_runner()
    me = wait_registered(env.spool, runner.pid)
    planted = time.monotonic()
    wait_until(lambda: holder(spool) == me, 30, "the runner to replace the odd lease")
    assert time.monotonic() - planted >= 2.5  # judged only after the lease time (3 s)
    purge_round(env, spool, 5)


def test_the_lease_is_held_while_its_holder_beats_and_taken_over_once_it_stops(
    env: SpoolEnv,
) -> None:
    """Two registrations with real heartbeat files and locks (one process): the
    second never gets the lease while the first's heartbeat changes, gets it
    once the heartbeat has stood still for the lease time on its own clock,
    and the first then sees it has lost it."""
    spool = Spool(env.spool, durable=False)
    first, second = Lease(spool, "host-1-aaaaaa"), Lease(spool, "host-2-bbbbbb")
    first.acquire()
    second.acquire()
    mine, theirs = PurgeLease(spool, 3.0), PurgeLease(spool, 3.0)
    try:
        assert mine.acquire(first.runner_id, 100.0)
        assert mine.acquire(first.runner_id, 100.0)  # held: taken again is a no-op
        for now in (100.0, 101.5, 103.0, 104.5, 106.0):
            first.beat([])
            assert not theirs.acquire(second.runner_id, now)
            assert mine.held_by(first.runner_id)
        # The first stops beating (paused, cut off): after 3 s on the second's clock.
        assert not theirs.acquire(second.runner_id, 108.0)
        assert theirs.acquire(second.runner_id, 109.1)
        assert not mine.held_by(first.runner_id) and theirs.held_by(second.runner_id)
        first.beat([])  # it comes back: the lease stays taken until the new holder dies
        assert not mine.acquire(first.runner_id, 110.0)
        theirs.release(first.runner_id)  # only the holder can give it up
        assert theirs.held_by(second.runner_id)
        second.release()  # its heartbeat gone: stopped, or recovered as dead
        assert mine.acquire(first.runner_id, 111.0)
    finally:
        first.release()
        second.release()
