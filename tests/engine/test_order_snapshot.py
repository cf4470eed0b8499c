"""The order snapshot of pending/ (jobspool.pendingorder) never makes the order wrong.

A runner leaves what its quick look found in ``.jobspool.order``; the next
start believes an entry only for the very file it describes. These tests
make real backlogs, leave a real snapshot, then change pending/ in every
way a stale snapshot could mislead (files added, removed, retried under the
same name with another priority or due time, rewritten in place with the
same inode, size and mtime), or replace the snapshot (another version,
torn, forged, huge, a link), and take from a real intake: the order must be
the order of full loads. A snapshot that cannot be written changes nothing.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobspool import backlog, pendingorder
from jobspool.model import Job
from jobspool.names import JSON
from jobspool.spool import Spool
from jobspool.stages.intake import QUICK_FROM, Intake
from jobspool.states import Status
from tests.conftest import SpoolEnv, wait_until

START = datetime(2026, 1, 1, tzinfo=UTC)
SETTLED_NS = backlog.SETTLED_NS  # as a runner process has it


@pytest.fixture(autouse=True)
def _settled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled as soon as they are written (the 2 s margin
    against a change within one clock tick is for real producers)."""
    monkeypatch.setattr(backlog, "SETTLED_NS", 0)


def _job(i: int, priority: int, not_before: datetime | None = None) -> Job:
    return Job(
        job="Typed",
        method="add",
        params=[i],
        id=f"job-{i:05d}",
        priority=priority,
        created_at=START + timedelta(seconds=(i * 37) % 1000),
        not_before=not_before,
    )


def _backlog(spool: Spool, n: int) -> dict[str, Job]:
    jobs = {j.id or "": j for j in (_job(i, (i * 7) % 3) for i in range(n))}
    spool.submit_many(list(jobs.values()))
    return jobs


def _leave_snapshot(spool: Spool) -> int:
    """A runner's first look at the backlog, and the snapshot it leaves."""
    intake = Intake(spool)
    intake.look_ahead()
    intake.save_order()
    known = pendingorder.read(spool, spool.seal_key())
    assert len(known) == len(intake.schedule)  # every file is in it
    return len(known)


def _drain(intake: Intake) -> list[str]:
    taken = []
    while (entry := intake.take(time.time(), lambda _e: True)) is not None:
        taken.append(entry.job_id)
    return taken


def _expected(jobs: dict[str, Job]) -> list[str]:
    due = [j for j in jobs.values() if j.not_before is None or j.not_before <= datetime.now(UTC)]
    return [j.id or "" for j in sorted(due, key=lambda j: (-j.priority, j.created_at, j.id))]


def _start_on(spool: Spool) -> Intake:
    """A new runner's intake: the look ahead, then the first rescan."""
    intake = Intake(spool)
    intake.look_ahead()
    intake.rescan()
    return intake


def _vouched(spool: Spool) -> set[str]:
    pending = spool.dir(Status.PENDING)
    known = pendingorder.read(spool, spool.seal_key())
    found, _rest = pendingorder.believe(str(pending), sorted(os.listdir(pending)), known)
    return {f.job_id for f in found}


def test_an_unchanged_backlog_is_ordered_from_the_snapshot_alone(env: SpoolEnv) -> None:
    spool = Spool.open(env.spool)
    jobs = _backlog(spool, QUICK_FROM + 100)
    _leave_snapshot(spool)
    assert _vouched(spool) == set(jobs)
    assert _drain(_start_on(spool)) == _expected(jobs)


def test_files_added_removed_and_retried_under_the_same_name_keep_the_order(
    env: SpoolEnv,
) -> None:
    spool = Spool.open(env.spool)
    jobs = _backlog(spool, QUICK_FROM + 100)
    _leave_snapshot(spool)
    pending = env.spool / "pending"
    # Removed (claimed by another runner, cancelled).
    for i in range(0, 40):
        (pending / f"job-{i:05d}{JSON}").unlink()
        del jobs[f"job-{i:05d}"]
    # Added, one of them first of all.
    added = [_job(i, 2) for i in range(9000, 9010)] + [_job(9999, 5)]
    spool.submit_many(added)
    jobs.update({j.id or "": j for j in added})
    # Retried under the same name: a new record linked into place, with
    # another priority, or with a due time ahead.
    for retried in (_job(50, 7), _job(51, -3)):
        _replace(spool, pending / f"{retried.id}{JSON}", retried)
        jobs[retried.id or ""] = retried
    later = datetime.now(UTC) + timedelta(hours=1)
    delayed = _job(52, 2, not_before=later)
    _replace(spool, pending / f"job-{52:05d}{JSON}", delayed)
    jobs[delayed.id or ""] = delayed
    vouched = _vouched(spool)
    assert not vouched & {"job-00050", "job-00051", "job-00052", "job-09999"}
    assert len(vouched) == QUICK_FROM + 100 - 40 - 3  # the rest still stands
    order = _drain(_start_on(spool))
    assert order == _expected(jobs)
    assert order[:2] == ["job-00050", "job-09999"]
    assert "job-00052" not in order


def _replace(spool: Spool, path: Path, job: Job) -> None:
    """A new record under an existing name, as a retry is published."""
    tmp = spool.root / "tmp" / f"new-{path.name}"
    tmp.write_bytes(spool.seal(job).data)
    os.replace(tmp, path)


def test_a_file_rewritten_in_place_with_the_same_inode_size_and_mtime_is_read_again(
    env: SpoolEnv,
) -> None:
    spool = Spool.open(env.spool)
    jobs = _backlog(spool, QUICK_FROM)
    _leave_snapshot(spool)
    path = env.spool / "pending" / f"job-00010{JSON}"
    before = os.stat(path)
    data = path.read_bytes()
    assert data.count(b'"priority": 1,') == 1
    with open(path, "r+b") as f:  # the same inode, the same size
        f.write(data.replace(b'"priority": 1,', b'"priority": 8,'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the same mtime
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    jobs["job-00010"] = jobs["job-00010"].model_copy(update={"priority": 8})
    assert "job-00010" not in _vouched(spool)  # only its ctime tells, and it does
    order = _drain(_start_on(spool))
    assert order[0] == "job-00010"
    assert order == _expected(jobs)


def _forged_snapshot(spool: Spool, *, version: int, key: bytes | None = None) -> bytes:
    """A snapshot that puts the job of lowest rank first, sealed with key."""
    pending = spool.dir(Status.PENDING)
    st_dir = os.stat(pending)
    header = f"jobspool pending order {version} {st_dir.st_dev} {st_dir.st_ino}\n"
    lines = []
    for name in sorted(os.listdir(pending)):
        st = os.stat(pending / name)
        seen = backlog.seen_text(st)
        priority = 9 if name == f"job-00001{JSON}" else 0
        lines.append(f"{name}\t{seen}\t{priority}\t0.0\t1\t{START.isoformat()}\tTyped\n")
    body = (header + "".join(lines)).encode()
    return body + pendingorder._mac(key or spool.seal_key(), body)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda s: _forged_snapshot(s, version=2), id="another-version"),
        pytest.param(lambda s: _forged_snapshot(s, version=1)[:-100], id="torn"),
        pytest.param(lambda s: _forged_snapshot(s, version=1, key=b"k" * 32), id="foreign-key"),
        pytest.param(lambda s: b"\x00garbage\n" * 1000, id="garbage"),
    ],
)
def test_a_snapshot_that_cannot_be_trusted_is_ignored(env: SpoolEnv, make: object) -> None:
    spool = Spool.open(env.spool)
    jobs = _backlog(spool, QUICK_FROM)
    assert jobs["job-00001"].priority == 1  # the forgery would put it first
    Path(pendingorder.path(spool)).write_bytes(make(spool))  # type: ignore[operator]
    assert pendingorder.read(spool, spool.seal_key()) == {}
    assert _drain(_start_on(spool)) == _expected(jobs)


def test_the_forgery_above_would_be_believed_if_sealed_right(env: SpoolEnv) -> None:
    """The check the tests above rely on: the same bytes, version 1, the
    spool's key, are believed (so it is the version, the tear or the key
    that makes them ignored)."""
    spool = Spool.open(env.spool)
    _backlog(spool, QUICK_FROM)
    Path(pendingorder.path(spool)).write_bytes(_forged_snapshot(spool, version=1))
    assert _drain(_start_on(spool))[0] == "job-00001"


def test_a_huge_or_linked_snapshot_is_ignored(env: SpoolEnv) -> None:
    spool = Spool.open(env.spool)
    jobs = _backlog(spool, QUICK_FROM)
    _leave_snapshot(spool)
    snap = Path(pendingorder.path(spool))
    elsewhere = env.spool / "runners" / "order-elsewhere"
    os.replace(snap, elsewhere)
    snap.symlink_to(elsewhere)  # a valid snapshot, behind a link
    assert pendingorder.read(spool, spool.seal_key()) == {}
    assert _drain(_start_on(spool)) == _expected(jobs)
    snap.unlink()
    with open(snap, "wb") as f:  # sparse: over the cap without using the disk
        f.truncate(pendingorder.MAX_BYTES + 1)
    assert pendingorder.read(spool, spool.seal_key()) == {}
    assert _drain(_start_on(spool)) == _expected(jobs)


def test_a_snapshot_that_cannot_be_written_changes_nothing(env: SpoolEnv) -> None:
    spool = Spool.open(env.spool)
    jobs = _backlog(spool, QUICK_FROM)
    snap = Path(pendingorder.path(spool))
    snap.mkdir()  # nothing can be renamed onto it, even by root
    (snap / "keep").write_text("")
    intake = Intake(spool)
    intake.look_ahead()
    intake.rescan()
    intake.save_order()  # logged, not raised
    assert snap.is_dir()
    assert not [n for n in os.listdir(env.spool) if n.startswith(".jobspool.order.")]
    assert _drain(intake) == _expected(jobs)


def test_a_runner_restarted_on_a_backlog_uses_the_snapshot_and_keeps_the_order(
    env: SpoolEnv,
) -> None:
    spool = Spool.open(env.spool)
    later = datetime.now(UTC) + timedelta(hours=1)
    waiting = [_job(i, 0, not_before=later) for i in range(QUICK_FROM + 50)]
    spool.submit_many(waiting)  # not due: the backlog stays while runners come and go
    env.write_config(workers=1)
    pending = env.spool / "pending"
    newest = max(os.stat(pending / n).st_ctime_ns for n in os.listdir(pending))
    wait_until(lambda: time.time_ns() - newest > SETTLED_NS, 10, "the backlog to settle")
    spool.submit(Job(job="Typed", method="add", params=[1, 1], id="urgent-1", priority=9))
    runner = env.start_runner()
    wait_until(lambda: env.status_of("urgent-1") == "completed", 60, "the first urgent job")
    wait_until(lambda: os.path.exists(pendingorder.path(spool)), 30, "the order snapshot")
    runner.stop()
    assert _vouched(spool) == {j.id for j in waiting}
    # While no runner runs: a waiting job is retried under its name, due now
    # and of the highest priority; another is removed; a new one comes.
    retried = _job(7, 8)
    _replace(spool, pending / f"{retried.id}{JSON}", retried)
    (pending / f"{waiting[0].id}{JSON}").unlink()
    spool.submit(Job(job="Typed", method="add", params=[2, 2], id="urgent-2", priority=7))
    assert retried.id not in _vouched(spool)
    runner = env.start_runner()
    wait_until(lambda: env.status_of("urgent-2") == "completed", 60, "the second urgent job")
    wait_until(lambda: env.status_of(retried.id or "") == "completed", 60, "the retried job")
    runner.stop()
    began = {
        job_id: json.loads((env.spool / "completed" / f"{job_id}{JSON}").read_text())["attempts"][
            0
        ]["started_at"]
        for job_id in (retried.id, "urgent-2")
    }
    assert began[retried.id] < began["urgent-2"]
