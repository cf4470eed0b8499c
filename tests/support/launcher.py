"""A stand-in for the runner's launcher, and stepping the loop by hand.

``Runner(config, watch=False, launcher=StandIns())`` hands each attempt's
``RunRequest`` to a :class:`StandInLauncher`, which implements the
``Launcher`` protocol of ``jobspool.executor`` but starts nothing: it records
the request. The test then says what the attempt did by posting the very
messages the fork server's pipe decodes to (``jobspool.messages``):
``started``, ``report``, ``exit``, ``gone``; the next ``Runner.step`` routes
them.

The runner kills attempts by pid (psutil, process groups), so no pid posted
here may belong to a process that is not ours:

* :meth:`StandInLauncher.spawn` starts a real ``sleep`` in its own session
  (an attempt leads its own process group) and posts its pid;
  :meth:`StandInLauncher.reap` waits for it (bounded) and posts its real
  exit status, so a kill by the runner arrives as -9, as from the fork server;
* an attempt without a process reports with :data:`NO_SUCH_PID`, a number at
  or above Linux's ``PID_MAX_LIMIT``, which no process can have.

Closing a stand-in does not kill its processes (the real fork server would),
so that a test can tell the runner's own kills apart; :meth:`StandIns.cleanup`
kills and reaps whatever is left when the test ends.

:func:`step_until` steps a runner at a fixed instant until a condition holds.
Finished attempts are published on the runner's publisher threads, which
post ``Published`` to the runner's mailbox: between steps it waits on the
mailbox for that message (returning as soon as it is queued), and only while
a publication is in flight; the bound is there only so that a stuck
publisher fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobspool import provenance
from jobspool.child import RunRequest
from jobspool.daemon import Runner
from jobspool.messages import (
    AttemptExited,
    AttemptReported,
    AttemptStarted,
    Event,
    LauncherGone,
    decode_report,
)
from jobspool.model import ErrorInfo, Outcome

if TYPE_CHECKING:
    from jobspool.executor import Launcher

Post = Callable[[Event], None]

# Linux hands out pids below PID_MAX_LIMIT (2**22 on 64-bit machines, the
# most /proc/sys/kernel/pid_max may be set to): this one is never a process.
PID_MAX_LIMIT = 1 << 22
NO_SUCH_PID = PID_MAX_LIMIT
_PID_MAX = Path("/proc/sys/kernel/pid_max")
if _PID_MAX.exists():
    assert int(_PID_MAX.read_text()) <= PID_MAX_LIMIT, "pid_max above PID_MAX_LIMIT"

# Bound on waiting for a process the runner should have killed, or for a
# publisher thread; only reached when the test is about to fail anyway.
BOUND_SECONDS = 10.0


class StandInLauncher:
    """Records each attempt it is asked to start; the test scripts the rest."""

    def __init__(self, start_method: str, post: Post) -> None:
        self.start_method = start_method
        self._post = post
        self.requests: list[RunRequest] = []
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.closed = False

    # ------------------------------------------------------------ the protocol

    @property
    def fd(self) -> int | None:
        return None  # messages go straight to the mailbox: nothing to poll

    def pump(self) -> None:
        """Nothing to read: every message was posted when the test made it."""

    def wait_ready(self) -> None:
        """Ready at once."""

    def start(self, req: RunRequest) -> None:
        if self.closed:
            raise RuntimeError("stand-in launcher is closed")
        self.requests.append(req)

    pools = False  # stand-in attempts are never pooled

    def stop(self, token: str) -> None:
        """Never asked: only pooled attempts are stopped through the launcher."""

    def close(self) -> None:
        self.closed = True

    # ------------------------------------------------------------ what was asked

    def request_for(self, job_id: str) -> RunRequest:
        """The latest request for job_id."""
        found = [r for r in self.requests if r.job_id == job_id]
        assert found, f"no attempt of {job_id} was started here"
        return found[-1]

    def token(self, job_id: str) -> str:
        return self.request_for(job_id).token

    # ------------------------------------------------------------ what the attempt does

    def spawn(self, token: str) -> int:
        """Give the attempt a real process (``sleep 60``) and post its start."""
        assert token not in self.children, f"{token} has a process already"
        # Marked as the runner marks its attempts: the runner kills a process
        # named on disk only once it proves it is one of its attempts.
        env = dict(os.environ) | provenance.runner_marks()
        proc = subprocess.Popen(["sleep", "60"], start_new_session=True, env=env)
        self.children[token] = proc
        self.started(token, proc.pid)
        return proc.pid

    def started(self, token: str, pid: int) -> None:
        """Post ``AttemptStarted``; pid must be a process spawned here."""
        child = self.children.get(token)
        assert child is not None and child.pid == pid, "only pids of our own processes"
        self._post(AttemptStarted(token, pid))

    def report(
        self,
        token: str,
        outcome: Outcome,
        *,
        result: Any = None,
        error: ErrorInfo | None = None,
        error_types: tuple[str, ...] = (),
        delay: float | None = None,
    ) -> None:
        """Post the attempt's report, made by the decoder the pipe's reports go through."""
        child = self.children.get(token)
        pid = child.pid if child is not None else NO_SUCH_PID
        data: dict[str, Any] = {
            "outcome": str(outcome),
            "result": result,
            "error": error.model_dump() if error is not None else None,
            "error_types": list(error_types),
            "delay": delay,
        }
        self._post(AttemptReported(token, pid, decode_report(data)))

    def exit(self, token: str, code: int) -> None:
        """Post ``AttemptExited`` for an attempt without a process of its own."""
        assert token not in self.children, f"{token} has a process: reap it instead"
        self._post(AttemptExited(token, code))

    def reap(self, token: str) -> int:
        """Wait for the attempt's process to end (it must have been killed),
        then post its real exit status; returns it."""
        proc = self.children[token]
        try:
            code = proc.wait(BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the process of {token} was never killed") from None
        self._post(AttemptExited(token, code))
        return code

    def gone(self) -> None:
        """The launcher died (as when the fork server's pipe closes)."""
        self._post(LauncherGone())

    def cleanup(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class StandIns:
    """The ``launcher=`` factory of ``Runner``: makes and keeps stand-ins."""

    def __init__(self) -> None:
        self.made: list[StandInLauncher] = []

    def __call__(self, start_method: str, post: Post) -> StandInLauncher:
        launcher = StandInLauncher(start_method, post)
        self.made.append(launcher)
        return launcher

    @property
    def current(self) -> StandInLauncher:
        assert self.made, "the runner has made no launcher yet"
        return self.made[-1]

    def cleanup(self) -> None:
        for launcher in self.made:
            launcher.cleanup()


if TYPE_CHECKING:
    _conforms: Launcher = StandInLauncher("auto", lambda _e: None)


def step_until(
    runner: Runner,
    cond: Callable[[], object],
    now: float,
    wall: float,
    *,
    max_steps: int = 20,
    what: str = "condition",
) -> float | None:
    """Step ``runner`` at ``now``/``wall`` until ``cond()`` holds; returns the
    last step's result (seconds to sleep, None to exit)."""
    for _ in range(max_steps):
        wait = runner.step(now, wall)
        if cond():
            return wait
        if runner.finishing.busy():
            runner.events.wait(BOUND_SECONDS)  # returns once Published is queued
    raise AssertionError(f"{what} did not happen within {max_steps} steps")
