"""The runner's stages: each concern of the loop, with one owner.

The loop (``jobspool.daemon.Runner``) only wires them: it takes the messages
from its mailbox, asks each stage for its due work, and routes what a stage
returns to the stage that acts on it. A stage never reaches into another
stage's state.

* ``intake``: pending/ read into the schedule (loading, rechecks,
  quarantine of non-jobs, rescans);
* ``dispatch``: claims within the caps, launches, the attempts in flight,
  timeouts and cancel requests;
* ``finishing``: the decision applied, the record sealed and published;
* ``liveness``: the heartbeat, fencing, recovery of dead runners;
* ``maintenance``: leftovers of interrupted work, tmp/ cleanup, strays.
* ``retention``: finished jobs past their age removed (or archived) whole,
  by the one runner holding the purge lease, a batch at a time on its thread.

What flows between them is the two values below: an attempt that ended (or
never started) with what it amounted to, and a claimed job that the
allow-list refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobspool.attempts import Active, Report
from jobspool.fsops import StrPath
from jobspool.model import Job
from jobspool.names import RunningName


@dataclass(frozen=True, slots=True)
class Finish:
    """An attempt that is over (or that never ran), for finishing to record."""

    act: Active
    report: Report


@dataclass(frozen=True, slots=True)
class Rejection:
    """A claimed job the allow-list refuses: it fails at once, never retried."""

    claim: RunningName
    path: StrPath
    job: Job
    error: Exception
