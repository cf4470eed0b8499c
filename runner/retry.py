"""What happens to a job after an attempt: one pure function, no I/O.

``decide`` takes the attempt's outcome, the job's retry policy, how many
attempts are spent and the time, and returns a :class:`Decision`. Backoff is
also pure: the random part of jitter is passed in, so tests and the chaos
harness can replay a run exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from jobspool.config import RetryPolicy
from jobspool.model import Outcome, within


class Action(StrEnum):
    COMPLETE = "complete"
    RETRY = "retry"
    FAIL = "fail"
    CANCEL = "cancel"
    HAND_BACK = "hand_back"


@dataclass(frozen=True)
class Decision:
    action: Action
    at: datetime | None = None  # for RETRY: not before this time
    reason: str = ""


def backoff_seconds(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Delay before the attempt after ``attempt`` (1-based); rand is in [0, 1)."""
    base = policy.delay_seconds
    if policy.backoff == "exponential":
        base = base * (2.0 ** max(0, min(attempt - 1, 60)))
    base = min(base, policy.max_delay_seconds)
    return min(base * (1.0 + policy.jitter * rand), policy.max_delay_seconds)


def is_non_retryable(policy: RetryPolicy, error_types: tuple[str, ...]) -> bool:
    """error_types lists the exception's class and its bases, dotted and bare."""
    wanted = set(policy.non_retryable)
    return any(t in wanted for t in error_types)


def decide(  # noqa: PLR0911 - one return per rule reads best
    outcome: Outcome,
    *,
    policy: RetryPolicy,
    attempts_used: int,
    max_attempts: int | None,
    now: datetime,
    rand: float,
    error_types: tuple[str, ...] = (),
    requested_delay: float | None = None,
) -> Decision:
    """The fate of a job whose attempt number ``attempts_used`` just ended."""
    if outcome is Outcome.SUCCEEDED:
        return Decision(Action.COMPLETE)
    if outcome is Outcome.CANCELLED:
        return Decision(Action.CANCEL, reason="cancelled while running")
    if outcome is Outcome.HANDED_BACK:
        return Decision(Action.HAND_BACK, reason="runner shut down")
    if outcome is Outcome.REJECTED:
        return Decision(Action.FAIL, reason="rejected; not retried")
    if outcome is Outcome.FAILED and is_non_retryable(policy, error_types):
        return Decision(Action.FAIL, reason=f"{error_types[0]} is not retryable")
    limit = within(max_attempts, policy.max_attempts)
    if attempts_used >= limit:
        return Decision(
            Action.FAIL, reason=f"{outcome.value} on attempt {attempts_used} of {limit}"
        )
    if requested_delay is not None and outcome is Outcome.RETRY:
        delay = max(0.0, requested_delay)
    else:
        delay = backoff_seconds(policy, attempts_used, rand)
    why = f"{outcome.value} on attempt {attempts_used} of {limit}; retry in {delay:.3g}s"
    return Decision(Action.RETRY, at=now + timedelta(seconds=delay), reason=why)
