"""jobspool.retry: the pure decision after an attempt, and backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobspool.config import RetryPolicy
from jobspool.model import Attempt, Job, Outcome
from jobspool.retry import Action, backoff_seconds, decide, is_non_retryable

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_policy(**changes: object) -> RetryPolicy:
    base = {
        "max_attempts": 3,
        "delay_seconds": 1.0,
        "backoff": "exponential",
        "max_delay_seconds": 3600.0,
        "jitter": 0.0,
    }
    return RetryPolicy.model_validate({**base, **changes})


@pytest.mark.parametrize(("attempt", "expected"), [(1, 2.0), (2, 2.0), (7, 2.0)])
def test_fixed_backoff_is_constant(attempt: int, expected: float) -> None:
    assert backoff_seconds(make_policy(backoff="fixed", delay_seconds=2), attempt, 0.0) == expected


@pytest.mark.parametrize(("attempt", "expected"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)])
def test_exponential_backoff_doubles(attempt: int, expected: float) -> None:
    assert backoff_seconds(make_policy(delay_seconds=0.5), attempt, 0.0) == expected


def test_backoff_is_capped_even_for_absurd_attempt_numbers() -> None:
    p = make_policy(delay_seconds=1, max_delay_seconds=5)
    assert backoff_seconds(p, 3, 0.0) == 4.0
    assert backoff_seconds(p, 4, 0.0) == 5.0
    assert backoff_seconds(p, 10_000, 0.0) == 5.0
    assert backoff_seconds(p, 10_000, 0.999) == 5.0  # jitter never passes the cap


def test_jitter_stays_within_its_bounds() -> None:
    p = make_policy(delay_seconds=10, jitter=0.5, backoff="fixed")
    assert backoff_seconds(p, 1, 0.0) == 10.0
    assert backoff_seconds(p, 1, 0.5) == 12.5
    for i in range(100):
        value = backoff_seconds(p, 1, i / 100)
        assert 10.0 <= value < 15.0


def test_zero_delay_means_at_once() -> None:
    assert backoff_seconds(make_policy(delay_seconds=0), 5, 0.9) == 0.0


def _decide(
    outcome: Outcome,
    used: int = 1,
    *,
    policy: RetryPolicy | None = None,
    max_attempts: int | None = None,
    rand: float = 0.0,
    error_types: tuple[str, ...] = (),
    requested_delay: float | None = None,
) -> tuple[Action, datetime | None, str]:
    d = decide(
        outcome,
        policy=policy or make_policy(),
        attempts_used=used,
        max_attempts=max_attempts,
        now=NOW,
        rand=rand,
        error_types=error_types,
        requested_delay=requested_delay,
    )
    return d.action, d.at, d.reason


def test_success_completes() -> None:
    assert _decide(Outcome.SUCCEEDED, used=3) == (Action.COMPLETE, None, "")


def test_cancel_and_hand_back_are_never_retries() -> None:
    assert _decide(Outcome.CANCELLED)[0] is Action.CANCEL
    action, at, _ = _decide(Outcome.HANDED_BACK, used=99)
    assert (action, at) == (Action.HAND_BACK, None)


def test_rejected_fails_at_once() -> None:
    action, at, reason = _decide(Outcome.REJECTED, used=1)
    assert (action, at) == (Action.FAIL, None)
    assert "not retried" in reason


@pytest.mark.parametrize(
    "outcome", [Outcome.FAILED, Outcome.TIMED_OUT, Outcome.CRASHED, Outcome.LOST]
)
def test_retryable_outcomes_retry_after_backoff(outcome: Outcome) -> None:
    assert _decide(outcome, used=1)[:2] == (Action.RETRY, NOW + timedelta(seconds=1))
    assert _decide(outcome, used=2)[:2] == (Action.RETRY, NOW + timedelta(seconds=2))
    action, at, reason = _decide(outcome, used=3)
    assert (action, at) == (Action.FAIL, None)
    assert reason == f"{outcome.value} on attempt 3 of 3"


def test_the_jobs_own_max_attempts_may_lower_the_policy_never_raise_it() -> None:
    """F6: a record's max_attempts is its producer's word; the allow-list's is the limit."""
    assert _decide(Outcome.FAILED, used=1, max_attempts=2)[0] is Action.RETRY
    assert _decide(Outcome.FAILED, used=2, max_attempts=2)[0] is Action.FAIL
    assert _decide(Outcome.FAILED, used=1, max_attempts=1)[0] is Action.FAIL
    action, _at, reason = _decide(Outcome.FAILED, used=3, max_attempts=1000)
    assert (action, reason) == (Action.FAIL, "failed on attempt 3 of 3")


def test_non_retryable_exceptions_fail_at_once_matching_bases_and_dotted_names() -> None:
    types = (
        "BadInput",
        "tests.support.testjobs.BadInput",
        "ValueError",
        "builtins.ValueError",
        "Exception",
        "builtins.Exception",
        "BaseException",
        "builtins.BaseException",
    )
    for wanted in (["BadInput"], ["ValueError"], ["tests.support.testjobs.BadInput"]):
        action, _at, reason = _decide(
            Outcome.FAILED, used=1, policy=make_policy(non_retryable=wanted), error_types=types
        )
        assert action is Action.FAIL, wanted
        assert reason == "BadInput is not retryable"
    assert is_non_retryable(make_policy(non_retryable=["KeyError"]), types) is False
    assert (
        _decide(
            Outcome.FAILED,
            used=1,
            policy=make_policy(non_retryable=["KeyError"]),
            error_types=types,
        )[0]
        is Action.RETRY
    )


def test_non_retryable_applies_to_raised_exceptions_only() -> None:
    p = make_policy(non_retryable=["Crashed"])
    assert _decide(Outcome.CRASHED, used=1, policy=p, error_types=("Crashed",))[0] is (Action.RETRY)


def test_requested_delay_replaces_backoff() -> None:
    assert _decide(Outcome.RETRY, used=1, requested_delay=7.5)[:2] == (
        Action.RETRY,
        NOW + timedelta(seconds=7.5),
    )
    assert _decide(Outcome.RETRY, used=2, requested_delay=-3)[:2] == (Action.RETRY, NOW)
    # Without a delay, a requested retry backs off like any other.
    assert _decide(Outcome.RETRY, used=2)[:2] == (Action.RETRY, NOW + timedelta(seconds=2))
    # A requested retry still counts against max_attempts.
    assert _decide(Outcome.RETRY, used=3, requested_delay=1)[0] is Action.FAIL
    # Only the RETRY outcome may ask for its own delay.
    assert _decide(Outcome.FAILED, used=1, requested_delay=60)[1] == NOW + timedelta(seconds=1)


def test_jitter_is_applied_by_decide() -> None:
    p = make_policy(delay_seconds=10, jitter=0.2, backoff="fixed")
    assert _decide(Outcome.FAILED, used=1, policy=p, rand=0.5)[1] == NOW + timedelta(seconds=11)


def _attempt(n: int, outcome: Outcome) -> Attempt:
    return Attempt(number=n, runner="r", host="h", outcome=outcome)


def test_hand_back_does_not_count_and_a_manual_retry_starts_afresh() -> None:
    job = Job(
        job="J",
        method="m",
        attempts=[
            _attempt(1, Outcome.FAILED),
            _attempt(2, Outcome.HANDED_BACK),
            _attempt(3, Outcome.LOST),
        ],
    )
    assert job.attempts_used == 2
    retried = job.model_copy(update={"attempt_base": 3})
    assert retried.attempts_used == 0
    later = retried.model_copy(
        update={
            "attempts": [
                *job.attempts,
                _attempt(4, Outcome.HANDED_BACK),
                _attempt(5, Outcome.CRASHED),
            ]
        }
    )
    assert later.attempts_used == 1
    # With policy max 3, two counted attempts leave room for a third.
    assert _decide(Outcome.FAILED, used=job.attempts_used)[0] is Action.RETRY
