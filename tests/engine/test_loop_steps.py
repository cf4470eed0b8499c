"""The runner's loop, one step at a time, with an injected clock.

Each test drives ``Runner.step(now, wall)`` by hand on a private spool: the
monotonic ``now`` and the wall clock ``wall`` are chosen by the test, the
launcher is a stand-in (``tests.support.launcher``) that records each
attempt and posts what the attempt did as the typed messages the fork
server's pipe decodes to. Nothing waits on the real clock: a rule about time
is checked by stepping just before and at the instant it names. Real
processes are started only where a kill is checked.

Runner A's clock starts at ``T0``; a second runner, B, has a clock of its own
starting at ``S0`` (liveness is judged on the observer's own clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from jobspool import actions, control, heartbeats, logs
from jobspool.config import load_config
from jobspool.daemon import Runner
from jobspool.model import ErrorInfo, Job, Outcome
from jobspool.names import RunningName
from jobspool.spool import Spool
from tests.conftest import SpoolEnv
from tests.support.launcher import StandInLauncher, StandIns, step_until
from tests.support.spoolkit import log_text

T0 = 100.0  # runner A's monotonic clock
S0 = 5000.0  # runner B's monotonic clock
HEARTBEAT = 0.25
LEASE = 30.0
POLL = 2.0
GRACE = 5.0
TIMEOUT = 20.0
DELAY = 40.0
LONG = 1000.0  # the timeout of "Long": no step of the lease tests reaches it
MARKER = "tests.support.testjobs.Marker"  # named in requests, never imported here

POLICY = {"max_attempts": 3, "delay_seconds": DELAY, "backoff": "fixed", "jitter": 0}
JOBS: dict[str, Any] = {
    "Work": {
        "class": MARKER,
        "allowed_methods": ["touch"],
        "timeout_seconds": TIMEOUT,
        "retry": POLICY,
    },
    "Capped": {"class": MARKER, "allowed_methods": ["touch"], "concurrency": 1},
    # A job may lower its allow-list's timeout, never raise it: a long one is the allow-list's.
    "Long": {
        "class": MARKER,
        "allowed_methods": ["touch"],
        "timeout_seconds": LONG,
        "retry": POLICY,
    },
}
SETTINGS: dict[str, Any] = {
    "workers": 2,
    "heartbeat_seconds": HEARTBEAT,
    "lease_seconds": LEASE,
    "poll_seconds": POLL,
    "grace_seconds": GRACE,
    "timeout_seconds": 600,
    "durable": False,
    # The default policy differs from Work's own in every field the tests read.
    "retry": {"max_attempts": 5, "delay_seconds": 1, "backoff": "fixed", "jitter": 0},
    "allowed_jobs": JOBS,
}


@dataclass
class Stepped:
    """One runner stepped by hand, with its stand-in launchers."""

    runner: Runner
    launchers: StandIns
    wall: float  # the wall clock of every step unless one is given

    @property
    def spool(self) -> Spool:
        return self.runner.spool

    @property
    def launcher(self) -> StandInLauncher:
        return self.launchers.current

    def step(self, now: float, wall: float | None = None) -> float | None:
        return self.runner.step(now, self.wall if wall is None else wall)

    def until(self, cond: Callable[[], object], now: float, what: str) -> float | None:
        """Step at ``now`` until cond holds and no publication is in flight."""

        def settled() -> bool:
            return bool(cond()) and not self.runner.finishing.busy()

        return step_until(self.runner, settled, now, self.wall, what=what)

    def token(self, job_id: str) -> str:
        return self.launcher.token(job_id)


StartRunner = Callable[[float], Stepped]


@pytest.fixture
def start_runner(env: SpoolEnv) -> Iterator[StartRunner]:
    """Start runners on the test's spool, each at its own ``now``; closed after."""
    env.write_config(**SETTINGS)
    wall = time.time()
    made: list[Stepped] = []
    logs.setup(load_config(env.config).log_dir)

    def start(now: float) -> Stepped:
        launchers = StandIns()
        runner = Runner(load_config(env.config), watch=False, launcher=launchers)
        stepped = Stepped(runner, launchers, wall)
        made.append(stepped)
        runner.start(now)
        return stepped

    try:
        yield start
    finally:
        for stepped in made:
            try:
                stepped.runner.close()
            finally:
                stepped.launchers.cleanup()
        logs.close()


def submit(spool: Spool, job: str = "Work", **fields: Any) -> str:
    params = fields.pop("params", ["marker.txt"])
    return spool.submit(Job(job=job, method="touch", params=params, **fields))


def status(spool: Spool, job_id: str) -> str | None:
    view = spool.find(job_id)
    return view.status if view is not None else None


def record(spool: Spool, job_id: str) -> Job:
    return spool.get(job_id).record


def claims(spool: Spool) -> list[RunningName]:
    return sorted((c for c, _path in spool.running_entries()), key=lambda c: c.job_id)


def outcomes(job: Job) -> list[Outcome]:
    return [a.outcome for a in job.attempts]


def retry_reason(outcome: str, attempt: int) -> str:
    return f"{outcome} on attempt {attempt} of 3; retry in {DELAY:g}s"


# ---------------------------------------------------------------- claim, launch, finish


def test_a_job_is_claimed_on_the_first_step_launched_and_completed(
    start_runner: StartRunner,
) -> None:
    a = start_runner(T0)
    job_id = submit(a.spool, params=["marker.txt", "hello"])

    a.step(T0)

    assert claims(a.spool) == [RunningName(job_id, a.runner.runner_id, 1)]
    req = a.launcher.request_for(job_id)
    assert req.token == RunningName(job_id, a.runner.runner_id, 1).filename[: -len(".json")]
    assert (req.job, req.method, req.class_path) == ("Work", "touch", MARKER)
    assert req.params == ["marker.txt", "hello"]
    assert (req.attempt, req.max_attempts) == (1, 3)
    assert req.spool == str(a.spool.root)
    assert len(a.launcher.requests) == 1

    a.launcher.report(req.token, Outcome.SUCCEEDED, result={"rows": 3})
    a.until(lambda: status(a.spool, job_id) == "completed", T0, "the completion")

    done = record(a.spool, job_id)
    assert done.result == {"rows": 3}
    assert outcomes(done) == [Outcome.SUCCEEDED]
    assert (done.attempts[0].number, done.attempts[0].runner) == (1, a.runner.runner_id)
    assert claims(a.spool) == []


# ---------------------------------------------------------------- timeouts


def test_an_attempt_is_killed_at_its_timeout_and_not_before(
    env: SpoolEnv, start_runner: StartRunner
) -> None:
    env.write_config(workers=3)
    a = start_runner(T0)
    early = submit(a.spool)  # probe: its exit says whether a kill was ordered
    late = submit(a.spool)  # same deadline, a real process
    short = submit(a.spool, timeout_seconds=5)  # the job's own timeout wins
    a.step(T0)
    assert len(a.launcher.requests) == 3
    pid = a.launcher.spawn(a.token(late))

    a.step(T0 + 5)  # short's deadline: its kill is recorded (it has no pid)
    a.launcher.exit(a.token(short), -9)
    a.until(lambda: status(a.spool, short) == "pending", T0 + 5, "short's finish")
    killed = record(a.spool, short)
    assert outcomes(killed) == [Outcome.TIMED_OUT]
    assert killed.attempts[0].error is not None
    assert killed.attempts[0].error.message.startswith("ran longer than 5s")

    a.step(T0 + TIMEOUT - HEARTBEAT)  # just before the others' deadline
    a.launcher.exit(a.token(early), -9)
    a.until(lambda: status(a.spool, early) == "pending", T0 + TIMEOUT - HEARTBEAT, "a crash")
    assert outcomes(record(a.spool, early)) == [Outcome.CRASHED]  # no kill was ordered

    a.step(T0 + TIMEOUT)  # at the deadline: the process tree is killed
    assert a.launcher.reap(a.token(late)) == -9
    a.until(lambda: status(a.spool, late) == "pending", T0 + TIMEOUT, "the timed-out finish")
    timed_out = record(a.spool, late)
    assert outcomes(timed_out) == [Outcome.TIMED_OUT]
    attempt = timed_out.attempts[0]
    assert (attempt.pid, attempt.signal) == (pid, 9)
    assert attempt.error is not None and attempt.error.type == "Timeout"
    assert timed_out.reason == retry_reason("timed_out", 1)
    assert timed_out.next_attempt_at is not None
    assert attempt.finished_at is not None
    assert timed_out.next_attempt_at - attempt.finished_at >= timedelta(seconds=DELAY)
    assert claims(a.spool) == []


# ---------------------------------------------------------------- retries and attempts


def test_a_failed_attempt_waits_for_its_backoff_on_the_wall_clock(
    start_runner: StartRunner,
) -> None:
    a = start_runner(T0)
    job_id = submit(a.spool)
    a.step(T0)
    error = ErrorInfo(type="ValueError", message="bad row")
    a.launcher.report(a.token(job_id), Outcome.FAILED, error=error, error_types=("ValueError",))
    a.until(lambda: status(a.spool, job_id) == "pending", T0, "the retry's publication")

    waiting = record(a.spool, job_id)
    assert outcomes(waiting) == [Outcome.FAILED]
    assert waiting.reason == retry_reason("failed", 1)
    assert waiting.error == error
    assert waiting.next_attempt_at is not None and waiting.attempts[0].finished_at is not None
    assert waiting.next_attempt_at - waiting.attempts[0].finished_at >= timedelta(seconds=DELAY)
    due = waiting.next_attempt_at.timestamp()

    a.step(T0 + 1, wall=a.wall)
    a.step(T0 + POLL, wall=due - 0.001)  # a rescan too: still not due
    assert status(a.spool, job_id) == "pending"
    assert len(a.launcher.requests) == 1

    a.step(T0 + POLL, wall=due)
    assert claims(a.spool) == [RunningName(job_id, a.runner.runner_id, 2)]
    assert a.launcher.request_for(job_id).attempt == 2


def test_attempts_that_crash_are_counted_and_stop_at_max_attempts(
    start_runner: StartRunner,
) -> None:
    a = start_runner(T0)
    job_id = submit(a.spool)
    wall = a.wall
    for n in range(1, 6):
        a.step(T0 + n, wall=wall)
        if status(a.spool, job_id) == "failed":
            break
        assert claims(a.spool) == [RunningName(job_id, a.runner.runner_id, n)]
        a.launcher.exit(a.token(job_id), -9)  # no report: a crash
        a.until(lambda: not claims(a.spool), T0 + n, f"the finish of attempt {n}")
        found = record(a.spool, job_id)
        if found.next_attempt_at is not None:
            wall = found.next_attempt_at.timestamp()

    failed = record(a.spool, job_id)
    assert status(a.spool, job_id) == "failed"
    assert outcomes(failed) == [Outcome.CRASHED] * 3
    assert [x.signal for x in failed.attempts] == [9, 9, 9]
    assert failed.reason == "crashed on attempt 3 of 3"
    assert len(a.launcher.requests) == 3


# ---------------------------------------------------------------- concurrency


def test_workers_and_a_job_concurrency_cap_limit_claims(
    env: SpoolEnv, start_runner: StartRunner
) -> None:
    env.write_config(workers=3)
    a = start_runner(T0)
    capped = [submit(a.spool, job="Capped") for _ in range(3)]  # oldest first
    work = [submit(a.spool) for _ in range(3)]

    a.step(T0)
    assert {c.job_id for c in claims(a.spool)} == {capped[0], work[0], work[1]}

    a.launcher.report(a.token(capped[0]), Outcome.SUCCEEDED)
    a.until(lambda: status(a.spool, capped[0]) == "completed", T0, "the capped job's finish")
    # Its slot went to the next capped job, and only to one.
    assert {c.job_id for c in claims(a.spool)} == {capped[1], work[0], work[1]}
    assert len(a.launcher.requests) == 4


# ---------------------------------------------------------------- cancel


def test_a_cancel_request_kills_a_running_attempt(start_runner: StartRunner) -> None:
    a = start_runner(T0)
    job_id = submit(a.spool)
    a.step(T0)
    a.launcher.spawn(a.token(job_id))
    a.step(T0)

    assert actions.cancel(a.spool, job_id, by="tester", via="test") == "requested"
    a.step(T0 + POLL)  # the rescan looks at control/ (no watcher here)
    assert a.launcher.reap(a.token(job_id)) == -9
    a.until(lambda: status(a.spool, job_id) == "cancelled", T0 + POLL, "the cancelled finish")

    cancelled = record(a.spool, job_id)
    assert outcomes(cancelled) == [Outcome.CANCELLED]
    assert cancelled.reason == "cancelled while running"
    last = cancelled.history[-1]
    assert (last.action, last.by, last.via) == ("cancelled", "tester", "test")
    assert control.requests(a.spool, "cancel") == {}


# ---------------------------------------------------------------- stop


def test_stop_ends_claims_and_hands_back_at_the_grace_deadline(
    env: SpoolEnv, start_runner: StartRunner
) -> None:
    env.write_config(workers=4)
    a = start_runner(T0)
    kept = submit(a.spool)  # a real process, running past the grace
    quick = submit(a.spool)  # finishes within the grace
    probe = submit(a.spool)  # its exit says whether a hand-back was ordered
    a.step(T0)
    a.launcher.spawn(a.token(kept))

    a.runner.request_stop(T0)
    newcomer = submit(a.spool)
    assert a.step(T0 + POLL) is not None  # a rescan sees it; a slot is free
    assert status(a.spool, newcomer) == "pending"
    assert len(a.launcher.requests) == 3

    a.launcher.report(a.token(quick), Outcome.SUCCEEDED)
    a.until(lambda: status(a.spool, quick) == "completed", T0 + POLL, "a finish in the grace")

    a.step(T0 + GRACE - HEARTBEAT)
    a.launcher.exit(a.token(probe), -9)
    a.until(lambda: status(a.spool, probe) == "pending", T0 + GRACE - HEARTBEAT, "the probe")
    assert outcomes(record(a.spool, probe)) == [Outcome.CRASHED]

    a.step(T0 + GRACE)
    assert a.launcher.reap(a.token(kept)) == -9
    last = a.until(lambda: status(a.spool, kept) == "pending", T0 + GRACE, "the hand-back")
    handed = record(a.spool, kept)
    assert outcomes(handed) == [Outcome.HANDED_BACK]
    assert handed.attempts_used == 0
    assert handed.next_attempt_at is None
    assert last is None  # nothing left: the loop exits
    assert status(a.spool, newcomer) == "pending"
    assert len(a.launcher.requests) == 3


# ---------------------------------------------------------------- fencing and recovery


def test_a_runner_past_its_lease_kills_its_attempts_as_lost_and_re_registers(
    start_runner: StartRunner,
) -> None:
    a = start_runner(T0)
    job_id = submit(a.spool, "Long")
    a.step(T0)
    a.launcher.spawn(a.token(job_id))
    a.step(T0 + HEARTBEAT)  # routes the start; beats
    old = a.runner.runner_id

    a.step(T0 + HEARTBEAT + LEASE)  # exactly one lease since the beat: still ours
    assert a.runner.runner_id == old
    paused = T0 + HEARTBEAT + 2 * LEASE + HEARTBEAT  # silent for more than a lease
    a.step(paused)

    assert a.launcher.reap(a.token(job_id)) == -9
    new = a.runner.runner_id
    assert new != old
    assert set(heartbeats.read_heartbeats(a.spool)) == {new}
    a.until(lambda: status(a.spool, job_id) == "pending", paused, "the lost attempt's finish")
    lost = record(a.spool, job_id)
    assert outcomes(lost) == [Outcome.LOST]
    assert lost.attempts[0].runner == old
    assert lost.attempts[0].error is not None
    assert lost.attempts[0].error.type == "RunnerLost"
    assert lost.reason == retry_reason("lost", 1)


def test_a_fenced_runner_publishes_nothing_for_a_recovered_claim(
    env: SpoolEnv, start_runner: StartRunner
) -> None:
    a = start_runner(T0)
    job_id = submit(a.spool, "Long")
    a.step(T0)
    old = a.runner.runner_id
    token = a.token(job_id)

    b = start_runner(S0)
    b.step(S0)
    b.until(lambda: status(b.spool, job_id) == "pending", S0 + LEASE, "the recovery")
    recovered = record(b.spool, job_id)
    assert outcomes(recovered) == [Outcome.LOST]

    # Meanwhile the attempt reported success to A, which was paused.
    a.launcher.report(token, Outcome.SUCCEEDED, result="late")
    a.until(lambda: not a.runner.dispatch.active, T0 + LEASE + 1, "A's fenced finish")

    assert a.runner.runner_id != old
    assert status(a.spool, job_id) == "pending"
    assert a.spool.names("completed") == []
    assert claims(a.spool) == []
    assert record(a.spool, job_id) == recovered
    assert f"fenced job={job_id}" in log_text(env)  # the success was dropped, and said so


def test_a_runner_recovers_the_claims_of_a_silent_one_after_the_lease_on_its_own_clock(
    start_runner: StartRunner,
) -> None:
    a = start_runner(T0)
    again = submit(a.spool, "Long")
    spent = submit(a.spool, "Long", max_attempts=1)
    a.step(T0)
    pid = a.launcher.spawn(a.token(again))
    a.step(T0 + HEARTBEAT)  # A's heartbeat now lists the process; then A goes silent
    silent = a.runner.runner_id
    listed = heartbeats.read_heartbeats(a.spool)[silent].jobs
    assert {(j.id, j.pid) for j in listed} == {(again, pid), (spent, None)}

    b = start_runner(S0)
    b.step(S0)
    b.step(S0 + LEASE - HEARTBEAT)  # a look at the runners, one beat short of the lease
    assert claims(b.spool) == [RunningName(job_id, silent, 1) for job_id in sorted((again, spent))]

    b.until(lambda: not claims(b.spool), S0 + LEASE, "the recovery")
    assert a.launcher.reap(a.token(again)) == -9  # the orphan was killed
    assert status(b.spool, again) == "pending"
    assert status(b.spool, spent) == "failed"
    for job_id in (again, spent):
        lost = record(b.spool, job_id)
        assert outcomes(lost) == [Outcome.LOST]
        assert (lost.attempts[0].runner, lost.attempts[0].number) == (silent, 1)
        assert lost.attempts[0].error is not None
        assert lost.attempts[0].error.type == "RunnerLost"
    assert record(b.spool, again).reason == retry_reason("lost", 1)
    assert record(b.spool, spent).reason == "lost on attempt 1 of 1"


# ---------------------------------------------------------------- the launcher


def test_a_launcher_that_dies_loses_its_attempts_as_crashes_and_is_replaced(
    start_runner: StartRunner,
) -> None:
    a = start_runner(T0)
    with_process = submit(a.spool)
    without = submit(a.spool)
    a.step(T0)
    first = a.launcher
    first.spawn(first.token(with_process))

    first.gone()
    a.until(lambda: not claims(a.spool), T0, "the lost attempts")
    assert first.closed
    assert len(a.launchers.made) == 2
    assert first.reap(first.token(with_process)) == -9  # killed by the runner, not by close
    for job_id in (with_process, without):
        crashed = record(a.spool, job_id)
        assert outcomes(crashed) == [Outcome.CRASHED]
        assert crashed.attempts[0].signal == 9
        assert crashed.reason == retry_reason("crashed", 1)

    second = a.launcher
    assert second is not first and not second.closed
    retries = [record(a.spool, j).next_attempt_at for j in (with_process, without)]
    due = max(at.timestamp() for at in retries if at is not None)
    a.step(T0 + 1, wall=due)
    assert {(c.job_id, c.attempt) for c in claims(a.spool)} == {(with_process, 2), (without, 2)}
    assert {r.job_id for r in second.requests} == {with_process, without}
    assert len(first.requests) == 2
