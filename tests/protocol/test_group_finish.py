"""A runner's group commit of finished claims (Spool.finish_many, the
publisher threads that gather a group) and the recovery of a finishing
claim its dead runner left behind.

The power-loss states of a group finish are enumerated in
tests/engine/test_powerloss.py (operation ``finish-group``); here: what each
claim of a group comes to when only some of them can be published, how
few flushes a group costs, and that a group forms only while publishers
are busy.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from bench.crashops import DEAD_RUNNER, register_dead_runner
from jobspool.errors import Conflict
from jobspool.fsops import FileOps, StrPath
from jobspool.messages import Event, Published
from jobspool.model import Job
from jobspool.names import RunningName
from jobspool.publishers import Publishers
from jobspool.spool import FinishItem, Spool
from jobspool.states import Status
from tests.conftest import SpoolEnv, wait_until
from tests.support.spoolkit import stop_clean


class Counting(FileOps):
    """Real file operations, counted; sync_files fails while ``flush_error`` is set."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.flush_error: OSError | None = None

    def fsync(self, fd: int) -> None:
        self.calls.append("fsync")
        super().fsync(fd)

    def fsync_dir(self, path: StrPath) -> None:
        self.calls.append(f"fsync_dir {os.path.basename(path)}")
        super().fsync_dir(path)

    def sync_files(self, within: StrPath, paths: Sequence[StrPath]) -> None:
        self.calls.append("sync_files")
        if self.flush_error is not None:
            raise self.flush_error
        super().sync_files(within, paths)


def claimed(spool: Spool, count: int) -> list[FinishItem]:
    """count jobs submitted and claimed by runner-a, each with its finished record."""
    items: list[FinishItem] = []
    for n in range(count):
        job_id = spool.submit(Job(job="Marker", method="touch", params=[f"m{n}"]))
        path = spool.claim(f"{job_id}.json", RunningName(job_id, "runner-a", 1))
        assert path is not None
        record = spool.read_job(path)
        items.append((path, Status.COMPLETED, spool.seal(record, {"result": n})))
    return items


def job_id_of(item: FinishItem) -> str:
    claim = RunningName.parse(os.path.basename(item[0]))
    assert claim is not None
    return claim.job_id


def names(spool: Spool, status: Status | str) -> list[str]:
    return sorted(os.listdir(spool.dir(status)))


def test_each_claim_of_a_group_is_published_or_fails_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    items = claimed(spool, 3)
    first, middle, last = (job_id_of(item) for item in items)
    other = spool.dir(Status.RUNNING) / RunningName(middle, "runner-b", 1).filename
    os.rename(items[1][0], other)  # runner-b took the middle claim over

    out = spool.finish_many(items)

    assert isinstance(out[1], Conflict)
    assert "taken over" in str(out[1])
    assert out[0] == str(spool.dir(Status.COMPLETED) / f"{first}.json")
    assert out[2] == str(spool.dir(Status.COMPLETED) / f"{last}.json")
    assert names(spool, Status.COMPLETED) == sorted([f"{first}.json", f"{last}.json"])
    assert names(spool, Status.RUNNING) == [other.name]  # runner-b's claim, untouched
    assert spool.read_job(spool.dir(Status.COMPLETED) / f"{last}.json").result == 2
    assert names(spool, "tmp") == []


def test_a_group_costs_one_flush_and_one_fsync_per_destination(tmp_path: Path) -> None:
    ops = Counting()
    spool = Spool(tmp_path / "spool", ops=ops)
    items = claimed(spool, 4)
    path, _, sealed = items[3]
    items[3] = (path, Status.PENDING, sealed)  # a retry goes back to pending/
    ops.calls.clear()

    out = spool.finish_many(items)

    assert all(isinstance(one, str) for one in out), out
    assert ops.calls == ["sync_files", "fsync_dir completed", "fsync_dir pending"]
    assert len(names(spool, Status.COMPLETED)) == 3
    assert names(spool, Status.RUNNING) == []


def test_one_claim_alone_is_fsynced_as_a_single_finish(tmp_path: Path) -> None:
    ops = Counting()
    spool = Spool(tmp_path / "spool", ops=ops)
    [item] = claimed(spool, 1)
    ops.calls.clear()

    assert isinstance(spool.finish(*item), str)
    assert ops.calls == ["fsync", "fsync_dir completed"]


def test_a_failed_flush_moves_no_claim(tmp_path: Path) -> None:
    ops = Counting()
    spool = Spool(tmp_path / "spool", ops=ops)
    items = claimed(spool, 3)
    before = names(spool, Status.RUNNING)
    ops.flush_error = OSError(errno.EIO, "writeback failed")

    out = spool.finish_many(items)

    assert out == [ops.flush_error] * 3
    assert names(spool, Status.RUNNING) == before  # every claim kept, to be tried again
    assert names(spool, Status.COMPLETED) == []
    assert names(spool, "tmp") == []
    ops.flush_error = None
    assert all(isinstance(one, str) for one in spool.finish_many(items))


def test_publishers_group_what_waits_and_post_each_item_once() -> None:
    release = threading.Event()
    groups: list[list[int]] = []
    posted: list[Event] = []
    lock = threading.Lock()

    def work(group: list[int]) -> list[bool | Exception]:
        groups.append(list(group))
        release.wait(10)
        return [item % 2 == 0 for item in group]

    def post(event: Event) -> None:
        with lock:
            posted.append(event)

    pool: Publishers[int] = Publishers(1, work, post, max_group=4)
    pool.submit(0)
    wait_until(lambda: groups == [[0]], 5, "the first item to be taken alone")
    for item in range(1, 7):
        pool.submit(item)
    release.set()
    pool.shutdown()

    assert groups == [[0], [1, 2, 3, 4], [5, 6]]
    assert [(p.item, p.outcome) for p in posted if isinstance(p, Published)] == [
        (n, n % 2 == 0) for n in range(7)
    ]


@pytest.mark.parametrize("threads", [1, 3])
def test_shutdown_runs_everything_queued_before_it(threads: int) -> None:
    done: list[int] = []
    lock = threading.Lock()

    def work(group: list[int]) -> list[bool | Exception]:
        with lock:
            done.extend(group)
        return [True] * len(group)

    pool: Publishers[int] = Publishers(threads, work, lambda _event: None, max_group=5)
    for item in range(40):
        pool.submit(item)
    pool.shutdown()
    assert sorted(done) == list(range(40))


def claimed_by_dead_runner(env: SpoolEnv, marker: Path) -> tuple[Spool, RunningName, str]:
    """A Marker job claimed by a runner of this host that has died."""
    spool = Spool(env.spool)
    register_dead_runner(spool)
    job_id = spool.submit(Job(job="Marker", method="touch", params=[str(marker)]))
    claim = RunningName(job_id, DEAD_RUNNER, 1)
    path = spool.claim(f"{job_id}.json", claim)
    assert path is not None
    return spool, claim, path


def test_a_dead_runners_finishing_claim_is_recovered_without_waiting_a_lease(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """A crash between the fence and the publication leaves ``R-finishing``
    claims; once R is proven gone they are R's and recovered with its own."""
    env.write_config(lease_seconds=120)
    marker = tmp_path / "ran"
    spool, claim, path = claimed_by_dead_runner(env, marker)
    job_id = claim.job_id
    os.rename(path, spool.dir(Status.RUNNING) / claim.finishing().filename)

    runner = env.start_runner()
    rec = env.wait_status(job_id, "completed", timeout=30)  # far below the 120 s lease
    assert marker.exists()
    assert [a["outcome"] for a in rec["attempts"]] == ["lost", "succeeded"]
    stop_clean(runner)
    # Only now: a finish unlinks its finishing claim after the record is published.
    assert env.files("running") == []


def test_a_dead_runners_claim_of_a_finished_job_is_never_run_again(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """Its finish published the record and died before removing the claim:
    the terminal copy wins, at once, however the runner's start is ordered."""
    marker = tmp_path / "ran"
    spool, claim, path = claimed_by_dead_runner(env, marker)
    job_id = claim.job_id
    record = spool.read_job(path)
    done = spool.seal(record, {"result": "done before the crash"})
    os.link(path, spool.dir("tmp") / "kept")  # the claim as the crash left it
    spool.finish(path, Status.COMPLETED, done)
    os.rename(spool.dir("tmp") / "kept", path)

    runner = env.start_runner()
    wait_until(lambda: env.files("running") == [], 20, "the leftover claim to be settled")
    stop_clean(runner)
    assert not marker.exists()
    assert env.record("completed", job_id)["result"] == "done before the crash"
    assert [n for n in os.listdir(env.spool / "corrupt") if n.startswith(job_id)]
