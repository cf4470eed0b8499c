"""Leftovers of an interrupted transition: one id in two directories, stale tmp files.

The rule under test (leftovers.resolve_duplicates, leftovers.clean_tmp, and a
runner's startup): a terminal copy wins, then the higher revision, then the
state furthest along; losers go to corrupt/ byte for byte with a reason,
nothing is deleted; a copy younger than min_age is a move in flight and is
left alone; tmp files are never published and go only after an age limit.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.crashops import DEAD_RUNNER, register_dead_runner
from jobspool import actions, codec, leftovers, sealing
from jobspool.fsops import FileOps, StrPath
from jobspool.model import Job
from jobspool.names import RunningName
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv
from tests.support.spoolkit import ledger_lines, log_text

OLD = 120.0  # seconds: older than any lease these tests use
JOB_ID = "20261129-120000-000000-0000beef"


class Crash(BaseException):
    """The power went: raised at a chosen call, and caught by no engine code."""


class CrashAtDirSync(FileOps):
    """Real file operations that stop dead at the first fsync of one directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def fsync_dir(self, path: StrPath) -> None:
        if os.path.basename(path) == self.directory:
            raise Crash(f"power lost before fsync of {path}")
        super().fsync_dir(path)


def job(revision: int, ledger: Path | None = None, job_id: str = JOB_ID) -> Job:
    params = [str(ledger)] if ledger else ["unused"]
    return Job(job="Ledger", method="record", params=params, id=job_id, revision=revision)


def place(spool: Spool, status: Status, record: Job, age: float = OLD) -> Path:
    """Write a copy of record as a leftover would be: complete, and age seconds old.

    A copy in pending/ is sealed, as every record a runner or a person moves
    there is (a producer's file without a seal is tested in
    tests/engine/test_producer_files.py)."""
    job_id = record.id or ""
    name = f"{job_id}.json"
    if status is Status.RUNNING:
        name = RunningName(job_id, DEAD_RUNNER, 1).filename
    path = spool.dir(status) / name
    data = codec.encode_job(record)
    if status is Status.PENDING:
        data = sealing.seal(data, spool.seal_key())
    path.write_bytes(data)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def age_all(root: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), (stamp, stamp), follow_symlinks=False)


def where(spool: Spool, job_id: str = JOB_ID) -> list[str]:
    return [s.value for s, name in spool.iter_all() if name.startswith(job_id)]


def corrupt_with_reasons(spool: Spool) -> dict[str, str]:
    """corrupt/ entries -> their reason text; fails if an entry has no reason."""
    folder = spool.dir("corrupt")
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".reason.txt"):
            continue
        reason = folder / f"{name}.reason.txt"
        assert reason.exists(), f"corrupt/{name} has no reason beside it"
        out[name] = reason.read_text()
    return out


def assert_loser_kept(spool: Spool, loser: bytes, winner: str) -> None:
    """The losing copy is in corrupt/, byte for byte, with a reason naming the winner."""
    kept = corrupt_with_reasons(spool)
    assert len(kept) == 1, kept
    ((name, reason),) = kept.items()
    assert (spool.dir("corrupt") / name).read_bytes() == loser
    assert winner in reason and "duplicate" in reason, reason


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


# ---------------------------------------------------------------- the rule


def test_terminal_copy_wins_over_a_newer_pending_copy(spool: Spool) -> None:
    pending = place(spool, Status.PENDING, job(revision=5))
    loser = pending.read_bytes()
    completed = place(spool, Status.COMPLETED, job(revision=2))
    notes = leftovers.resolve_duplicates(spool, min_age=0)
    assert len(notes) == 1
    assert where(spool) == ["completed"]
    assert completed.exists()
    assert_loser_kept(spool, loser, f"completed/{completed.name}")


@pytest.mark.parametrize(
    ("pending_rev", "running_rev", "winner"),
    # Equal revisions: a claim whose removal from pending/ was lost; the claim
    # (running) is the newer state, so its attempt stays counted.
    [(3, 2, Status.PENDING), (2, 3, Status.RUNNING), (2, 2, Status.RUNNING)],
)
def test_between_pending_and_running_the_higher_revision_wins(
    spool: Spool, pending_rev: int, running_rev: int, winner: Status
) -> None:
    copies = {
        Status.PENDING: place(spool, Status.PENDING, job(pending_rev)),
        Status.RUNNING: place(spool, Status.RUNNING, job(running_rev)),
    }
    loser = next(p for s, p in copies.items() if s is not winner)
    loser_bytes = loser.read_bytes()
    leftovers.resolve_duplicates(spool, min_age=0)
    assert where(spool) == [winner.value]
    assert_loser_kept(spool, loser_bytes, f"{winner}/{copies[winner].name}")


@pytest.mark.parametrize(
    ("failed_rev", "completed_rev", "winner"),
    [(2, 3, Status.COMPLETED), (3, 2, Status.FAILED), (2, 2, Status.COMPLETED)],
)
def test_failed_and_completed_leave_exactly_one_terminal_copy(
    spool: Spool, failed_rev: int, completed_rev: int, winner: Status
) -> None:
    copies = {
        Status.FAILED: place(spool, Status.FAILED, job(failed_rev)),
        Status.COMPLETED: place(spool, Status.COMPLETED, job(completed_rev)),
    }
    loser_bytes = next(p for s, p in copies.items() if s is not winner).read_bytes()
    leftovers.resolve_duplicates(spool, min_age=0)
    assert where(spool) == [winner.value]
    assert_loser_kept(spool, loser_bytes, f"{winner}/{copies[winner].name}")


@pytest.mark.parametrize("ages", [(0.0, 0.0), (OLD, 0.0), (0.0, OLD)])
def test_a_fresh_duplicate_is_a_move_in_flight_and_left_alone(
    spool: Spool, ages: tuple[float, float]
) -> None:
    place(spool, Status.PENDING, job(1), age=ages[0])
    place(spool, Status.CANCELLED, job(2), age=ages[1])
    assert leftovers.resolve_duplicates(spool, min_age=30) == []
    assert sorted(where(spool)) == ["cancelled", "pending"]
    assert os.listdir(spool.dir("corrupt")) == []
    later = time.time() + 60  # the same pair once it has aged past min_age
    assert len(leftovers.resolve_duplicates(spool, min_age=30, now=later)) == 1
    assert where(spool) == ["cancelled"]


# ---------------------------------------------------------------- real interrupted moves


def _interrupted(spool: Spool, crash_dir: str) -> Spool:
    """The same spool, with file operations that lose power at crash_dir's fsync."""
    return Spool(spool.root, ops=CrashAtDirSync(crash_dir), create=False)


def test_interrupted_cancel_rolls_forward_to_cancelled(spool: Spool) -> None:
    job_id = spool.submit(Job(job="Ledger", method="record", params=["unused"]))
    with pytest.raises(Crash):
        actions.cancel(_interrupted(spool, "cancelled"), job_id, by="person")
    assert sorted(where(spool, job_id)) == ["cancelled", "pending"]
    pending = (spool.dir(Status.PENDING) / f"{job_id}.json").read_bytes()
    age_all(spool.root, OLD)
    leftovers.resolve_duplicates(spool, min_age=30)
    assert where(spool, job_id) == ["cancelled"]
    assert_loser_kept(spool, pending, f"cancelled/{job_id}.json")


def test_interrupted_runner_retry_rolls_forward_to_pending(spool: Spool) -> None:
    running = place(spool, Status.RUNNING, job(revision=1), age=0)
    retried = job(revision=1).model_copy(update={"reason": "retry in 0s"})
    with pytest.raises(Crash):
        _interrupted(spool, "pending").move(running, Status.RUNNING, Status.PENDING, retried)
    loser = running.read_bytes()
    age_all(spool.root, OLD)
    leftovers.resolve_duplicates(spool, min_age=30)
    assert where(spool) == ["pending"]
    assert spool.get(JOB_ID).record.reason == "retry in 0s"
    assert_loser_kept(spool, loser, f"pending/{JOB_ID}.json")


def test_interrupted_person_retry_rolls_back_to_failed(spool: Spool) -> None:
    failed = place(spool, Status.FAILED, job(revision=2), age=0)
    with pytest.raises(Crash):
        actions.retry(_interrupted(spool, "pending"), JOB_ID, by="person")
    pending = (spool.dir(Status.PENDING) / f"{JOB_ID}.json").read_bytes()
    age_all(spool.root, OLD)
    leftovers.resolve_duplicates(spool, min_age=30)
    assert where(spool) == ["failed"]
    assert failed.exists()
    assert_loser_kept(spool, pending, f"failed/{JOB_ID}.json")


# ---------------------------------------------------------------- tmp/


def _tmp_file(spool: Spool, name: str, data: bytes, age: float) -> Path:
    path = spool.dir("tmp") / name
    path.write_bytes(data)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_tmp_files_past_the_age_limit_go_younger_ones_stay(spool: Spool) -> None:
    whole = codec.encode_job(job(1))
    old = _tmp_file(spool, "old.tmp", whole, age=7200)
    old_partial = _tmp_file(spool, "partial.tmp", whole[:20], age=7200)
    young = _tmp_file(spool, "young.tmp", whole, age=10)
    removed = leftovers.clean_tmp(spool, max_age=3600)
    assert sorted(removed) == ["old.tmp", "partial.tmp"]
    assert not old.exists() and not old_partial.exists()
    assert young.read_bytes() == whole
    assert where(spool) == []  # never published, whatever it held


# ---------------------------------------------------------------- a runner's startup


def test_runner_startup_resolves_leftovers_and_runs_what_is_left(env: SpoolEnv) -> None:
    spool = Spool(env.spool)
    ledger = env.root / "ledger.txt"
    done, moved, both = (f"20261129-120000-00000{i}-0000beef" for i in (1, 2, 3))
    place(spool, Status.PENDING, job(1, ledger, done))
    place(spool, Status.COMPLETED, job(2, ledger, done))
    place(spool, Status.RUNNING, job(2, ledger, moved))
    place(spool, Status.PENDING, job(3, ledger, moved))
    place(spool, Status.FAILED, job(3, ledger, both))
    place(spool, Status.COMPLETED, job(3, ledger, both))
    old_tmp = _tmp_file(spool, "old.tmp", codec.encode_job(job(1, ledger, "never")), 7200)
    young_tmp = _tmp_file(spool, "young.tmp", codec.encode_job(job(1, ledger, "never")), 5)
    register_dead_runner(spool)
    out = env.burst()
    assert out.returncode == 0, out.stderr
    assert where(spool, done) == ["completed"]
    assert where(spool, moved) == ["completed"]
    assert where(spool, both) == ["completed"]
    assert env.files("running") == [] and env.files("pending") == []
    assert [j for j, _n in ledger_lines(ledger)] == [moved]  # a terminal job never reruns
    assert len(corrupt_with_reasons(spool)) == 3
    assert log_text(env).count("duplicate_resolved") == 3
    assert not old_tmp.exists() and young_tmp.exists()
    assert where(spool, "never") == []


def test_tmp_name_left_by_a_finished_publish_does_not_cost_the_job(env: SpoolEnv) -> None:
    """submit links tmp/X to pending/<id>, then unlinks tmp/X without an fsync of tmp/.

    After a power loss that unlink may be gone while the submit had returned:
    pending/<id> then has a second name in tmp/. A restarted runner must
    still run the job (the tmp name is a leftover of our own publish), not
    quarantine it as a planted hard link.
    """
    spool = Spool(env.spool)
    ledger = env.root / "ledger.txt"
    job_id = spool.submit(Job(job="Ledger", method="record", params=[str(ledger)]))
    published = spool.dir(Status.PENDING) / f"{job_id}.json"
    os.link(published, spool.dir("tmp") / f"{job_id}.0a1b2c3d4e5f.tmp")
    age_all(env.spool, 90)  # the reboot took a minute and a half
    out = env.burst()
    assert out.returncode == 0, out.stderr
    assert where(spool, job_id) == ["completed"], corrupt_with_reasons(spool)
    assert [j for j, _n in ledger_lines(ledger)] == [job_id]


def test_a_finish_whose_finishing_name_was_moved_keeps_its_published_copy(
    tmp_path: Path,
) -> None:
    """A runner paused between publishing and removing its finishing name may
    find that name gone (taken over, or kept aside by resolve_duplicates in
    favour of the copy it just published). Its published copy must stand:
    withdrawing it could leave the job only in corrupt/."""

    class MovedAwayFirst(FileOps):
        other: Spool

        def unlink(self, path: StrPath) -> None:
            if os.path.basename(os.path.dirname(path)) == "running":
                self.other.quarantine(path, "moved aside while its runner was paused")
            super().unlink(path)

    ops = MovedAwayFirst()
    sp = Spool(tmp_path / "spool", ops=ops)
    ops.other = Spool(tmp_path / "spool")
    job_id = sp.submit(job(0))
    path = sp.claim(f"{job_id}.json", RunningName(job_id, "runner-a", 1))
    assert path is not None
    record = sp.read_job(path).model_copy(update={"result": 7})

    sp.finish(path, Status.COMPLETED, sp.seal(record))

    assert where(sp, job_id) == ["completed"]
    assert sp.read_job(sp.dir(Status.COMPLETED) / f"{job_id}.json").result == 7
    assert len(corrupt_with_reasons(sp)) == 1  # the moved name, kept with its reason
