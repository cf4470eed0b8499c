"""The spool operations whose power-loss states are enumerated, recorded for real.

Each :class:`Operation` prepares its precondition on a real, durable spool
with the ordinary file operations (that state is the durable snapshot), then
runs the real Spool method once through :class:`RecordingOps`. The job is a
``Ledger`` job writing to a path relative to the project directory, so every
materialised copy of a state keeps its own ledger of runs.

An operation concerns one job, except ``submit-batch``
(``Spool.submit_many`` of ``BATCH_SIZE`` jobs) and ``finish-group`` (a
runner's group commit of ``GROUP_SIZE`` finished claims,
``Spool.finish_many``), which acknowledge all of them with one return:
:attr:`Recorded.job_ids` lists every job an operation's promise covers, and
the checks hold for each of them.

A running file belongs to ``DEAD_RUNNER``: a runner of this host that no
longer exists, as after a power loss. Its heartbeat is in ``runners/`` and
its lock file is absent (no process holds it), which is exactly what a
restarted runner finds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.crashsim import Call, RecordingOps, Snapshot, live_files, snapshot
from jobspool import actions
from jobspool.fsops import FileOps
from jobspool.initspool import init_spool
from jobspool.leases import Lease
from jobspool.model import Attempt, ErrorInfo, Job, Outcome, utcnow
from jobspool.names import RunningName, hostname
from jobspool.purge import Purger
from jobspool.retention import Candidate
from jobspool.spool import Spool
from jobspool.states import Status

DEAD_RUNNER = f"{hostname()}-1-dead00"
LEDGER = "ledger.txt"
# More than one, so that the order of the batch's steps matters; three keep the
# number of unsynced changes near the exact-enumeration bound (crashsim).
BATCH_SIZE = 3
# Two claims show a group commit's order; each more claim multiplies the
# states a group finish can leave (four unsynced changes each).
GROUP_SIZE = 2
SETTINGS: dict[str, Any] = {
    "spool": "spool",
    "workers": 2,
    "timeout_seconds": 30,
    "heartbeat_seconds": 0.5,
    # Far below the age of every state (a reboot), so startup resolves duplicates;
    # far above a slow step on a loaded machine, so a runner never fences itself.
    "lease_seconds": 10,
    "poll_seconds": 0.2,
    "grace_seconds": 5,
    "min_free_bytes": 0,
    "min_free_inodes": 0,
    # No delay, so a recovered attempt is due again at once.
    "retry": {"max_attempts": 3, "delay_seconds": 0, "jitter": 0},
    "allowed_jobs": {
        "Ledger": {"class": "bench.crashjobs.Ledger", "allowed_methods": ["record"]},
    },
}


CONFIG_TEXT = yaml.safe_dump(SETTINGS, sort_keys=False)


def write_project(root: Path) -> Path:
    """allowed_jobs.yaml in root; returns where the spool goes."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "allowed_jobs.yaml").write_text(CONFIG_TEXT)
    return root / "spool"


def new_job() -> Job:
    return Job(job="Ledger", method="record", params=[LEDGER])


def running_path(spool: Spool, job_id: str) -> Path:
    return spool.dir(Status.RUNNING) / RunningName(job_id, DEAD_RUNNER, 1).filename


def attempt(outcome: Outcome) -> Attempt:
    now = utcnow()
    error = None
    if outcome is not Outcome.SUCCEEDED:
        error = ErrorInfo(type="RuntimeError", message="planned failure")
    return Attempt(
        number=1,
        runner=DEAD_RUNNER,
        host=hostname(),
        started_at=now,
        finished_at=now,
        outcome=outcome,
        error=error,
    )


# ---------------------------------------------------------------- preconditions


def register_dead_runner(spool: Spool) -> None:
    """The heartbeat a runner left before the power went; nobody holds its lock.

    It names a process that has exited: a free lock proves a runner of this
    host dead only once its pid is gone (a live pid keeps it alive).
    """
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lease = Lease(spool, DEAD_RUNNER)
    lease.pid = gone.pid
    lease.beat([])


def prepare_empty(spool: Spool) -> str:
    register_dead_runner(spool)
    return ""


def prepare_pending(spool: Spool) -> str:
    register_dead_runner(spool)
    return spool.submit(new_job(), by="crash-test")


def prepare_running(spool: Spool) -> str:
    job_id = prepare_pending(spool)
    claim = RunningName(job_id, DEAD_RUNNER, 1)
    if spool.claim(f"{job_id}.json", claim) is None:
        raise AssertionError("the precondition's claim failed")
    return job_id


def prepare_running_group(spool: Spool) -> str:
    """GROUP_SIZE claims of the dead runner (finish-group finds them in running/)."""
    for _ in range(GROUP_SIZE):
        prepare_running(spool)
    return ""


def prepare_failed(spool: Spool) -> str:
    job_id = prepare_running(spool)
    path = running_path(spool, job_id)
    job = spool.read_job(path)
    record = job.model_copy(
        update={"attempts": [attempt(Outcome.FAILED)], "reason": "failed for good"}
    )
    spool.move(path, Status.RUNNING, Status.FAILED, record)
    return job_id


def prepare_purgeable(spool: Spool) -> str:
    """A failed job with its log, and the purge area made (as after any purge)."""
    job_id = prepare_failed(spool)
    Purger(spool)
    log = spool.job_log_file(job_id)
    with open(log, "wb") as f:
        f.write(b"the job's output\n")
        os.fsync(f.fileno())
    spool.ops.fsync_dir(os.path.dirname(log))
    return job_id


# ---------------------------------------------------------------- the operations


def act_submit(spool: Spool, _job_id: str) -> str:
    return spool.submit(new_job(), by="crash-test", via="crashsim")


def act_submit_batch(spool: Spool, _job_id: str) -> list[str]:
    jobs = [new_job() for _ in range(BATCH_SIZE)]
    return spool.submit_many(jobs, by="crash-test", via="crashsim")


def act_claim(spool: Spool, job_id: str) -> str:
    if spool.claim(f"{job_id}.json", RunningName(job_id, DEAD_RUNNER, 1)) is None:
        raise AssertionError("the recorded claim failed")
    return job_id


def _finish_running(spool: Spool, job_id: str, dst: Status, updates: dict[str, Any]) -> str:
    path = running_path(spool, job_id)
    job = spool.read_job(path)
    spool.move(path, Status.RUNNING, dst, job.model_copy(update=updates))
    return job_id


def act_finish(spool: Spool, job_id: str) -> str:
    updates = {"attempts": [attempt(Outcome.SUCCEEDED)], "result": job_id}
    return _finish_running(spool, job_id, Status.COMPLETED, updates)


def act_finish_group(spool: Spool, _job_id: str) -> list[str]:
    """The runner's own finish (fenced), for all claims at once: one group commit."""
    items = []
    for name in sorted(os.listdir(spool.dir(Status.RUNNING))):
        claim = RunningName.parse(name)
        assert claim is not None, name
        path = spool.dir(Status.RUNNING) / name
        updates = {"attempts": [attempt(Outcome.SUCCEEDED)], "result": claim.job_id}
        items.append((path, Status.COMPLETED, spool.seal(spool.read_job(path), updates)))
    published = spool.finish_many(items)
    if not all(isinstance(one, str) for one in published):
        raise AssertionError(f"the recorded group finish failed: {published}")
    return [os.path.basename(str(one))[: -len(".json")] for one in published]


def act_retry(spool: Spool, job_id: str) -> str:
    failed = attempt(Outcome.FAILED)
    updates = {"attempts": [failed], "error": failed.error, "next_attempt_at": utcnow()}
    return _finish_running(spool, job_id, Status.PENDING, updates)


def act_cancel(spool: Spool, job_id: str) -> str:
    if actions.cancel(spool, job_id, by="person", via="crashsim") != "cancelled":
        raise AssertionError("the recorded cancel did not cancel")
    return job_id


def act_person_retry(spool: Spool, job_id: str) -> str:
    actions.retry(spool, job_id, by="person", via="crashsim")
    return job_id


def act_purge(spool: Spool, job_id: str) -> str:
    candidate = Candidate(Status.FAILED, f"{job_id}.json", None, 0.0)
    if Purger(spool).purge([candidate]).total != 1:
        raise AssertionError("the recorded purge removed nothing")
    return job_id


@dataclass(frozen=True)
class Operation:
    """One operation: its precondition, the recorded action, what acknowledgement means."""

    name: str
    prepare: Callable[[Spool], str]
    # Returns the id of the job it acted on, or the ids of all it acknowledged.
    act: Callable[[Spool, str], str | list[str]]
    # Was the job acknowledged before the operation began? (Not for a submit.)
    known_before: bool
    # Where the job must be once the operation has returned; None: no promise.
    done: Status | None
    # The operation removes the job (a purge): it may vanish, but never by halves.
    removes: bool = False


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("submit", prepare_empty, act_submit, False, Status.PENDING),
        Operation("submit-batch", prepare_empty, act_submit_batch, False, Status.PENDING),
        # A claim promises nothing durable: it is a rename and nothing more.
        Operation("claim", prepare_pending, act_claim, True, None),
        Operation("finish", prepare_running, act_finish, True, Status.COMPLETED),
        Operation("finish-group", prepare_running_group, act_finish_group, True, Status.COMPLETED),
        Operation("retry", prepare_running, act_retry, True, Status.PENDING),
        Operation("cancel", prepare_pending, act_cancel, True, Status.CANCELLED),
        Operation("person-retry", prepare_failed, act_person_retry, True, Status.PENDING),
        Operation("purge", prepare_purgeable, act_purge, True, None, removes=True),
    )
}


@dataclass
class Recorded:
    """An operation as it ran: the snapshot before, its calls, the live files after."""

    op: Operation
    job_ids: list[str]  # every job the operation's acknowledgement covers, in order
    snap: Snapshot
    calls: list[Call]
    live: dict[str, bytes]
    # The revision each job had once the operation returned (None: gone).
    done_revisions: dict[str, int | None]

    @property
    def job_id(self) -> str:
        """The job of a one-job operation (the first of a batch)."""
        return self.job_ids[0]


def record(op: Operation, root: Path) -> Recorded:
    """Prepare op's precondition in a fresh project under root, then run it once, recorded."""
    spool_dir = write_project(root)
    init_spool(spool_dir)  # as a user does once: runners refuse a spool without its marker
    plain = Spool(spool_dir, durable=True, ops=FileOps())
    job_id = op.prepare(plain)
    snap = snapshot(spool_dir)
    ops = RecordingOps(spool_dir)
    recorded_spool = Spool(spool_dir, durable=True, ops=ops, create=False)
    acted = op.act(recorded_spool, job_id)
    job_ids = [acted] if isinstance(acted, str) else list(acted)
    revisions = {}
    for one in job_ids:
        view = plain.find(one)
        revisions[one] = view.record.revision if view is not None else None
    return Recorded(op, job_ids, snap, list(ops.calls), live_files(spool_dir), revisions)
