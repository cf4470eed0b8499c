"""A purge cut short at every one of its file operations, and a person's retry racing it.

The purge runs for real on a real spool; a crash is the nth file operation
failing (nothing after it runs), injected through the spool's FileOps
(tests/support/faults.py). After each, a job is either untouched (its record
in its status, its log beside it) or staged in purge/; a restart, in-process
and by a real runner, then leaves every job whole or gone.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from jobspool import actions
from jobspool.errors import Conflict, JobNotFound
from jobspool.fsops import FileOps
from jobspool.initspool import init_spool
from jobspool.purge import AREA, Purger, scan
from jobspool.retention import Candidate, Policy, select
from jobspool.spool import Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv, wait_until
from tests.support.faults import CallRecorder, FailNthCall, HookedOps
from tests.support.finished import make_finished, side_files, where, whole_or_gone

DAY = 86400.0
POLICY: Policy = {Status.COMPLETED: DAY, Status.FAILED: DAY, Status.CANCELLED: DAY}
STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


def prepare(root: Path) -> tuple[Spool, list[str]]:
    """A durable spool with one old job per finished status, each with its side files."""
    init_spool(root)
    spool = Spool(root, durable=True)
    Purger(spool)  # the purge area exists, as after any first purge
    old = time.time() - 2 * DAY
    return spool, [make_finished(spool, s, old) for s in STATUSES]


def due(spool: Spool) -> list[Candidate]:
    now = time.time()
    found: list[Candidate] = []
    for status in STATUSES:
        found += select(list(scan(spool, status, POLICY, now)), POLICY, now)
    return found


def staged_names(spool: Spool) -> list[str]:
    area = spool.root / AREA
    return sorted(n for n in os.listdir(area) if not n.startswith(".")) if area.is_dir() else []


def calls_of_a_purge(tmp_path: Path) -> list[tuple[str, tuple[str, ...]]]:
    spool, _ = prepare(tmp_path / "recorded")
    ops = CallRecorder()
    tally = Purger(Spool(spool.root, durable=True, ops=ops, create=False)).purge(due(spool))
    assert tally.total == 3
    return ops.calls


def crash_at(root: Path, nth: int) -> tuple[Spool, list[str]]:
    spool, ids = prepare(root)
    faulty = Spool(root, durable=True, ops=FailNthCall(nth, errno.EIO), create=False)
    with pytest.raises(OSError):
        Purger(faulty).purge(due(spool))
    for job_id in ids:
        places = where(spool, job_id)
        assert len(places) <= 1, f"crash at call {nth}: {job_id} is in {places}"
        in_status = bool(places) and not places[0].startswith("purge/")
        if in_status or not places:  # untouched, or gone: never half removed
            problem = whole_or_gone(spool, job_id)
            assert problem is None, f"crash at call {nth}: {problem}"
    return spool, ids


def assert_whole_or_gone(spool: Spool, ids: list[str], label: str) -> None:
    assert staged_names(spool) == [], f"{label}: purge/ still holds {staged_names(spool)}"
    for job_id in ids:
        problem = whole_or_gone(spool, job_id)
        assert problem is None, f"{label}: {problem}"
        if not where(spool, job_id):
            assert side_files(spool, job_id) == {"log": False, "progress": False, "cancel": False}
    assert not os.listdir(spool.dir("corrupt")), f"{label}: {os.listdir(spool.dir('corrupt'))}"


def test_a_purge_cut_at_every_call_is_finished_by_a_restart(tmp_path: Path) -> None:
    calls = calls_of_a_purge(tmp_path)
    ops = {op for op, _ in calls}
    assert {"rename", "fsync_dir", "unlink_quiet"} <= ops
    for nth in range(1, len(calls) + 1):
        spool, ids = crash_at(tmp_path / f"crash-{nth}", nth)
        Purger(Spool(spool.root, durable=True, ops=FileOps(), create=False)).resume()
        assert_whole_or_gone(spool, ids, f"crash at call {nth} {calls[nth - 1]}")
        # Every job was due: once resumed, a purge removes what is left.
        Purger(spool).purge(due(spool))
        assert not any(where(spool, j) for j in ids)


def test_a_real_runner_restart_finishes_a_purge_cut_short(env: SpoolEnv, tmp_path: Path) -> None:
    calls = calls_of_a_purge(tmp_path)
    # After the first stage, after the side files went, before the last record went.
    points = [
        next(i for i, (op, _) in enumerate(calls, 1) if op == "fsync_dir"),
        max(i for i, (op, p) in enumerate(calls, 1) if op == "unlink_quiet" and ".log" in p[0]),
        max(i for i, (op, p) in enumerate(calls, 1) if op == "unlink" and "/purge/" in p[0]),
    ]
    env.write_config(retention={"completed": "keep", "failed": "keep", "cancelled": "keep"})
    for nth in points:
        spool, ids = crash_at(env.spool, nth)
        assert staged_names(spool), f"crash at call {nth} staged nothing"
        done = env.burst()
        assert done.returncode == 0, done.stderr
        assert_whole_or_gone(spool, ids, f"runner after crash at call {nth}")
        for d in [*(spool.dir(s) for s in STATUSES), Path(spool.log_dir / "jobs")]:
            for name in os.listdir(d):
                os.unlink(d / name)


# ---------------------------------------------------------------- a person's retry


class BeforeUnlinkOf(HookedOps):
    """Runs ``hook`` once, just before the unlink of ``path``."""

    def __init__(self, path: str, hook: object) -> None:
        super().__init__()
        self.path = path
        self.hook = hook
        self.fired = False

    def before(self, op: str, *paths: str) -> None:
        if op == "unlink" and paths[0] == self.path and not self.fired:
            self.fired = True
            assert callable(self.hook)
            self.hook()


def failed_job(tmp_path: Path) -> tuple[Spool, str, Candidate]:
    init_spool(tmp_path)
    spool = Spool(tmp_path, durable=False)
    job_id = make_finished(spool, Status.FAILED, time.time() - 2 * DAY)
    (candidate,) = due(spool)
    return spool, job_id, candidate


def test_a_purge_that_takes_the_job_mid_retry_wins_and_the_retry_is_told(tmp_path: Path) -> None:
    spool, job_id, candidate = failed_job(tmp_path)
    purger = Purger(spool)
    staged = []
    src = spool.path_in(Status.FAILED, f"{job_id}.json")
    ops = BeforeUnlinkOf(src, lambda: staged.append(purger.stage(candidate.status, candidate.name)))
    person = Spool(tmp_path, durable=False, ops=ops, create=False)
    with pytest.raises(Conflict):
        actions.retry(person, job_id, by="person")
    assert ops.fired and staged[0] is not None
    tally = purger.settle([staged[0]])
    assert tally.removed == {"failed": 1} and tally.kept == 0
    assert where(spool, job_id) == []
    assert side_files(spool, job_id) == {"log": False, "progress": False, "cancel": False}


def test_a_retry_that_moved_the_job_first_wins_and_nothing_is_purged(tmp_path: Path) -> None:
    spool, job_id, candidate = failed_job(tmp_path)
    actions.retry(spool, job_id, by="person")
    tally = Purger(spool).purge([candidate])
    assert tally.total == 0
    assert where(spool, job_id) == ["pending"]
    assert side_files(spool, job_id)["log"]


def test_a_purge_that_sees_a_retry_in_flight_waits_for_its_withdrawal_and_wins(
    tmp_path: Path,
) -> None:
    """The retry has linked its copy into pending/ when the purge takes the
    name: its unlink fails, it withdraws the copy, and the purge, which saw
    the copy and waited, removes the job (before: both lost, the job stayed)."""
    spool, job_id, candidate = failed_job(tmp_path)
    tallies = []
    purging = threading.Thread(target=lambda: tallies.append(Purger(spool).purge([candidate])))

    def purge_now() -> None:
        purging.start()
        wait_until(lambda: staged_names(spool), 10, "the purge to take the name")

    src = spool.path_in(Status.FAILED, f"{job_id}.json")
    person = Spool(tmp_path, durable=False, ops=BeforeUnlinkOf(src, purge_now), create=False)
    with pytest.raises(Conflict):
        actions.retry(person, job_id, by="person")
    purging.join(10)
    assert tallies[0].removed == {"failed": 1} and tallies[0].kept == 0
    assert where(spool, job_id) == []
    assert side_files(spool, job_id) == {"log": False, "progress": False, "cancel": False}


def test_a_purge_that_finds_a_retry_in_flight_gives_the_job_back(tmp_path: Path) -> None:
    """The retry stays between its link and its unlink for longer than the
    purge waits (here: it waits for the purge): the job goes back."""
    spool, job_id, candidate = failed_job(tmp_path)
    tallies = []
    src = spool.path_in(Status.FAILED, f"{job_id}.json")
    ops = BeforeUnlinkOf(src, lambda: tallies.append(Purger(spool).purge([candidate])))
    view = actions.retry(Spool(tmp_path, durable=False, ops=ops, create=False), job_id, by="p")
    assert view.status == "pending"
    assert tallies[0].total == 0 and tallies[0].kept == 1
    assert where(spool, job_id) == ["pending"]
    assert side_files(spool, job_id)["log"]
    assert os.listdir(spool.dir("corrupt")) == []


def test_retries_racing_purges_on_threads_have_exactly_one_winner(tmp_path: Path) -> None:
    init_spool(tmp_path)
    spool = Spool(tmp_path, durable=False)
    outcomes = {"retried": 0, "purged": 0}
    for _ in range(30):
        job_id = make_finished(spool, Status.FAILED, time.time() - 2 * DAY)
        (candidate,) = [c for c in due(spool) if c.name == f"{job_id}.json"]
        start = threading.Barrier(2)
        result: dict[str, object] = {}

        def retry(
            job_id: str = job_id,
            start: threading.Barrier = start,
            result: dict[str, object] = result,
        ) -> None:
            start.wait()
            try:
                actions.retry(spool, job_id, by="person")
                result["retry"] = "ok"
            except (Conflict, JobNotFound):  # the loser is told either way
                result["retry"] = "conflict"

        def purge(
            c: Candidate = candidate,
            start: threading.Barrier = start,
            result: dict[str, object] = result,
        ) -> None:
            start.wait()
            result["purge"] = Purger(spool).purge([c]).total

        threads = [threading.Thread(target=retry), threading.Thread(target=purge)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        if result["retry"] == "ok":
            assert result["purge"] == 0 and where(spool, job_id) == ["pending"], result
            assert side_files(spool, job_id)["log"]
            outcomes["retried"] += 1
        else:
            assert result["purge"] == 1 and where(spool, job_id) == [], result
            assert not side_files(spool, job_id)["log"]
            outcomes["purged"] += 1
    assert sum(outcomes.values()) == 30
    assert os.listdir(spool.dir("corrupt")) == []


@pytest.mark.parametrize("archive", [False, True], ids=["delete", "archive"])
def test_two_purges_settling_the_same_jobs_count_each_once(tmp_path: Path, archive: bool) -> None:
    """jobspool purge beside a runner: both may finish the same staged jobs."""
    init_spool(tmp_path / "spool")
    spool = Spool(tmp_path / "spool", durable=False)
    old = time.time() - 2 * DAY
    ids = [make_finished(spool, Status.FAILED, old) for _ in range(20)]
    kept = tmp_path / "archive" if archive else None
    first = Purger(spool, kept)
    staged = [s for c in due(spool) if (s := first.stage(c.status, c.name)) is not None]
    assert len(staged) == 20
    start = threading.Barrier(2)
    totals: list[int] = []
    errors: list[BaseException] = []

    def settle(purger: Purger) -> None:
        start.wait()
        try:
            totals.append(purger.settle(staged).total)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(p,)) for p in (first, Purger(spool, kept))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and sum(totals) == 20
    assert staged_names(spool) == [] and os.listdir(spool.dir("corrupt")) == []
    for job_id in ids:
        assert where(spool, job_id) == [] and not side_files(spool, job_id)["log"]
        if kept is not None:
            assert (kept / "failed" / f"{job_id}.json").is_file()
            assert (kept / "failed" / f"{job_id}.log").is_file()
    if kept is not None:
        assert len(os.listdir(kept / "failed")) == 40  # one record and one log each


def test_what_is_not_a_record_is_never_purged_nor_stops_a_purge(tmp_path: Path) -> None:
    """A directory or a link at a job's name in a finished directory, or at a
    staged name in purge/: never moved from there, never followed, and the
    purge goes on (planted in purge/: to corrupt/, with its reason)."""
    spool, ids = prepare(tmp_path / "spool")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    old = time.time() - 2 * DAY
    planted_dir = spool.dir(Status.COMPLETED) / "20200101-000000-000000-00000000.json"
    planted_dir.mkdir()
    planted_link = spool.dir(Status.FAILED) / "20200101-000000-000000-00000001.json"
    planted_link.symlink_to(outside)
    for p in (planted_dir, planted_link):
        os.utime(p, (old, old), follow_symlinks=False)
    in_area = spool.root / AREA / "completed~20200101-000000-000000-00000002.json"
    in_area.mkdir()
    purger = Purger(spool)
    purger.resume()
    assert purger.purge(due(spool)).total == 3
    assert planted_dir.is_dir() and planted_link.is_symlink() and outside.read_text() == "{}"
    assert not in_area.exists()
    assert [n for n in os.listdir(spool.dir("corrupt")) if not n.endswith(".txt")] == [
        "completed~20200101-000000-000000-00000002.json"
    ]
    assert not any(where(spool, j) for j in ids)
