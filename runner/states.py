"""Job statuses and the transitions between them (no I/O).

A status is the name of the spool directory that holds the job file, so this
module is the single list of those names. TRANSITIONS is the whole state
machine: spool.py refuses any move not listed here.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    # pending -> failed: rejected at claim time is done via running, but a
    # person may also cancel a pending job directly.
    Status.PENDING: frozenset({Status.RUNNING, Status.CANCELLED}),
    Status.RUNNING: frozenset(
        {Status.PENDING, Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.RUNNING}
    ),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset({Status.PENDING}),
    Status.CANCELLED: frozenset({Status.PENDING}),
}

# Which copy wins when one id is found in two directories after a crash and
# both have the same revision: the terminal copy first, then the state
# furthest along. A claim (pending -> running) is the only move that keeps
# the revision, so at equal revisions running is the newer state.
PRECEDENCE: dict[Status, int] = {
    Status.COMPLETED: 5,
    Status.FAILED: 4,
    Status.CANCELLED: 3,
    Status.RUNNING: 2,
    Status.PENDING: 1,
}


def can_move(src: Status, dst: Status) -> bool:
    return dst in TRANSITIONS[src]
