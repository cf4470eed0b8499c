"""Power loss at every point of submit, claim, finish, a runner's group finish, retry,
cancel, a person's retry and a purge.

The operations run for real on a real spool while every filesystem call is
logged; every state a power loss could leave (bench/crashsim.py says which
model) is written out as real files and recovered by real runners, and the
invariants are checked (bench/crashcheck.py). A failing run prints its seed;
set CRASHSIM_SEED to replay it.

A batch submit (``submit-batch``) is one operation whose return acknowledges
all its jobs: each is checked, and its order (every content flushed by one
syncfs before any name is linked into pending/) is shown needed by reordering
its log.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.crashcheck import OpReport, fsync_necessity, verify_operation
from bench.crashops import BATCH_SIZE, OPERATIONS, record
from bench.crashsim import (
    MAX_EXACT_BITS,
    SAMPLED_SUBSETS,
    Call,
    RecordingOps,
    Snapshot,
    bind,
    crash_point,
    final_state,
    live_files,
    materialise,
)

SEED = int(os.environ.get("CRASHSIM_SEED", "20261129"))
Reports = Callable[[str], OpReport]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    """Each operation is enumerated and recovered once; both recovery tests read it."""
    base = tmp_path_factory.mktemp("powerloss")
    cache: dict[str, OpReport] = {}

    def get(name: str) -> OpReport:
        if name not in cache:
            rec = record(OPERATIONS[name], base / name / "recorded")
            cache[name] = verify_operation(rec, base / name, SEED)
        return cache[name]

    return get


def explain(report: OpReport, violations: list[str]) -> str:
    head = (
        f"seed {SEED} (CRASHSIM_SEED), {report.op}: {report.points} crash points, "
        f"{report.states} states, {len(violations)} violations; calls:\n  "
        + "\n  ".join(report.calls)
    )
    return head + "\n" + "\n".join(violations[:20])


# ---------------------------------------------------------------- the model itself


def _states(snap: Snapshot, calls: list[Call], k: int | None = None) -> list[dict[str, bytes]]:
    point = crash_point(snap, bind(snap, calls), len(calls) if k is None else k, random.Random(1))
    return [s.paths() for s in point.states]


def _empty(*dirs: str) -> Snapshot:
    return Snapshot(dirs=list(dirs), names={}, contents={}, st_ino={})


def test_unsynced_content_may_show_empty_or_cut() -> None:
    snap = _empty("d")
    create = Call("create", "d/f", data=b"abcdef", ino=7)
    unsynced = _states(snap, [create, Call("fsync_dir", "d")])
    assert sorted(s["d/f"] for s in unsynced) == [b"", b"abc", b"abcdef"]
    synced = _states(snap, [create, Call("fsync_file", "d/f", ino=7), Call("fsync_dir", "d")])
    assert synced == [{"d/f": b"abcdef"}]


def test_syncfs_makes_every_content_written_before_it_durable() -> None:
    snap = _empty("d")
    made = [Call("create", "d/f", data=b"abcdef", ino=7), Call("create", "d/g", data=b"xy", ino=8)]
    named = Call("fsync_dir", "d")
    before = _states(snap, [*made, named])
    assert sorted({s["d/f"] for s in before}) == [b"", b"abc", b"abcdef"]
    assert sorted({s["d/g"] for s in before}) == [b"", b"x", b"xy"]
    assert _states(snap, [*made, Call("syncfs", "d"), named]) == [{"d/f": b"abcdef", "d/g": b"xy"}]
    # A file written after the flush is not covered by it.
    later = Call("create", "d/h", data=b"uvw", ino=9)
    after = _states(snap, [*made, Call("syncfs", "d"), later, named])
    assert sorted({s["d/h"] for s in after}) == [b"", b"u", b"uvw"]
    assert {(s["d/f"], s["d/g"]) for s in after} == {(b"abcdef", b"xy")}


def test_syncfs_makes_no_name_durable() -> None:
    snap = _empty("d", "e")
    made = [Call("create", "d/f", data=b"x", ino=7), Call("link", "d/f", "e/f", ino=7)]
    synced = _states(snap, [*made, Call("syncfs", "d")])
    assert sorted(tuple(sorted(s)) for s in synced) == [(), ("d/f",), ("d/f", "e/f"), ("e/f",)]
    assert all(set(s.values()) <= {b"x"} for s in synced)
    pinned = _states(
        snap, [*made, Call("syncfs", "d"), Call("fsync_dir", "d"), Call("fsync_dir", "e")]
    )
    assert pinned == [{"d/f": b"x", "e/f": b"x"}]


def test_a_name_is_durable_only_after_its_directory_fsync() -> None:
    snap = _empty("d", "e")
    made = [Call("create", "d/f", data=b"x", ino=7), Call("fsync_file", "d/f", ino=7)]
    assert _states(snap, [*made, Call("fsync_dir", "e")]) == [{}, {"d/f": b"x"}]
    assert _states(snap, [*made, Call("fsync_dir", "d")]) == [{"d/f": b"x"}]


def test_a_rename_is_atomic_and_durable_once_both_directories_are_synced() -> None:
    snap = Snapshot(dirs=["a", "b"], names={"a/x": 0}, contents={0: b"job"}, st_ino={50: 0})
    rename = Call("rename", "a/x", "b/x", ino=50)
    either = [{"a/x": b"job"}, {"b/x": b"job"}]
    assert sorted(_states(snap, [rename]), key=sorted) == either
    assert sorted(_states(snap, [rename, Call("fsync_dir", "b")]), key=sorted) == either
    both = [rename, Call("fsync_dir", "b"), Call("fsync_dir", "a")]
    assert _states(snap, both) == [{"b/x": b"job"}]


def test_unsynced_changes_persist_independently() -> None:
    calls = []
    for name, ino in (("d/f", 1), ("d/g", 2)):
        calls += [Call("create", name, data=b"x", ino=ino), Call("fsync_file", name, ino=ino)]
    names = sorted(tuple(sorted(s)) for s in _states(_empty("d"), calls))
    assert names == [(), ("d/f",), ("d/f", "d/g"), ("d/g",)]


def test_too_many_subsets_are_sampled_with_the_seed() -> None:
    snap = _empty("d")
    calls = []
    for i in range(MAX_EXACT_BITS + 2):
        path = f"d/f{i}"
        calls += [Call("create", path, data=b"x", ino=i + 1), Call("fsync_file", path, ino=i + 1)]
    steps = bind(snap, calls)
    first = crash_point(snap, steps, len(calls), random.Random(5))
    again = crash_point(snap, steps, len(calls), random.Random(5))
    assert first.sampled
    assert [s.key for s in first.states] == [s.key for s in again.states]
    assert len(first.states) <= SAMPLED_SUBSETS
    sizes = {len(s.files) for s in first.states}
    assert {0, MAX_EXACT_BITS + 2} <= sizes  # nothing persisted, and everything


def test_materialise_writes_hard_links_and_ages(tmp_path: Path) -> None:
    snap = Snapshot(dirs=["a", "b"], names={"a/x": 0, "b/y": 0}, contents={0: b"j"}, st_ino={})
    (state,) = crash_point(snap, [], 0, random.Random(1)).states
    materialise(state, snap.dirs, tmp_path, mtime=1_000_000.0)
    assert os.stat(tmp_path / "a/x").st_ino == os.stat(tmp_path / "b/y").st_ino
    assert (tmp_path / "b/y").read_bytes() == b"j"
    assert os.stat(tmp_path / "a/x").st_mtime == 1_000_000.0


def test_recorder_logs_each_change_in_order(tmp_path: Path) -> None:
    for d in ("tmp", "pending", "running"):
        (tmp_path / d).mkdir()
    ops = RecordingOps(tmp_path)
    ops.write_new(tmp_path / "tmp/a", b"data", durable=True)
    ops.link(tmp_path / "tmp/a", tmp_path / "pending/a")
    ops.unlink_quiet(tmp_path / "tmp/a")
    ops.unlink_quiet(tmp_path / "tmp/never-there")
    ops.rename(tmp_path / "pending/a", tmp_path / "running/a")
    ops.fsync_dir(tmp_path / "running")
    kinds = [(c.kind, c.path, c.dst) for c in ops.calls]
    assert kinds == [
        ("create", "tmp/a", ""),
        ("fsync_file", "tmp/a", ""),
        ("link", "tmp/a", "pending/a"),
        ("unlink", "tmp/a", ""),
        ("rename", "pending/a", "running/a"),
        ("fsync_dir", "running", ""),
    ]
    snap = Snapshot(dirs=["tmp", "pending", "running"], names={}, contents={}, st_ino={})
    assert final_state(snap, ops.calls) == live_files(tmp_path) == {"running/a": b"data"}


def test_recorder_logs_one_syncfs_for_a_batch_flush(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    ops = RecordingOps(tmp_path)
    paths = [tmp_path / f"tmp/{n}" for n in "ab"]
    for path in paths:
        ops.write_new(path, b"data", durable=False)
    ops.sync_files(tmp_path / "tmp", paths)
    assert [(c.kind, c.path) for c in ops.calls] == [
        ("create", "tmp/a"),
        ("create", "tmp/b"),
        ("syncfs", "tmp"),
    ]


# ---------------------------------------------------------------- the spool under power loss


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_log_explains_the_live_spool(name: str, tmp_path: Path) -> None:
    """Nothing the operation changed escaped the log (else the enumeration proves nothing)."""
    rec = record(OPERATIONS[name], tmp_path / "recorded")
    assert rec.calls, "the operation made no logged call"
    assert final_state(rec.snap, rec.calls) == rec.live


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_power_loss_then_cleanup_and_runner_keeps_invariants(name: str, reports: Reports) -> None:
    """resolve_duplicates(0) + clean_tmp(0), then real runners: I1, I2, I3, all terminal."""
    report = reports(name)
    assert report.points == len(report.calls) + 1
    assert report.states >= report.points
    found = report.in_mode("log") + report.in_mode("raw") + report.in_mode("tidy")
    assert not found, explain(report, found)


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_power_loss_then_plain_runner_restart_keeps_invariants(name: str, reports: Reports) -> None:
    """Only a real runner on the state the crash left: it must do all the recovery itself."""
    report = reports(name)
    found = report.in_mode("restart")
    assert not found, explain(report, found)


@pytest.mark.parametrize("name", [n for n in OPERATIONS if n != "claim"])
def test_each_fsync_the_invariants_rest_on_is_caught_when_left_out(
    name: str, tmp_path: Path
) -> None:
    """Leaving out the file fsync or the destination's directory fsync must be caught.

    This is what shows the enumeration can fail: without those fsyncs, a
    published name can show an empty file (I3), or a returned operation can
    lose its job (I1). A person's retry also rests on the fsync of failed/:
    without it the failed copy outranks the new pending one.
    """
    rec = record(OPERATIONS[name], tmp_path / "recorded")
    if OPERATIONS[name].removes:
        # A purge: the rename into purge/ must be durable (both directories)
        # before the log goes, and the log's removal before the record's.
        required, files = {"purge", "failed", "logs/jobs"}, 0
    else:
        dst = next(c.dst for c in rec.calls if c.kind == "link").split("/")[0]
        required = {dst, "failed"} if name == "person-retry" else {dst}
        files = 1
    checked = 0
    seen: set[str] = set()
    for verdict in fsync_necessity(rec, tmp_path, SEED):
        call = verdict.call
        first = call.path not in seen  # a directory's first fsync is the one relied on
        seen.add(call.path)
        if call.kind in ("fsync_file", "syncfs") or (call.path in required and first):
            checked += 1
            assert verdict.needed, f"seed {SEED}: leaving out {call.describe()} went unnoticed"
    assert checked == files + len(required)


# ---------------------------------------------------------------- the batch submit


@pytest.mark.parametrize("where", ["after the first link", "after the last link"])
def test_batch_linking_before_the_syncfs_is_caught(where: str, tmp_path: Path) -> None:
    """The order is what makes one flush enough: linked first, a name can
    reach the disk before its content, and a pending job shows empty or cut (I3)."""
    rec = record(OPERATIONS["submit-batch"], tmp_path / "recorded")
    assert len(set(rec.job_ids)) == BATCH_SIZE
    calls = list(rec.calls)
    syncfs = calls.pop(next(i for i, c in enumerate(calls) if c.kind == "syncfs"))
    links = [i for i, c in enumerate(calls) if c.kind == "link"]
    at = links[0] + 1 if where == "after the first link" else links[-1] + 1
    log = [*calls[:at], syncfs, *calls[at:]]
    found = verify_operation(rec, tmp_path / "reordered", SEED, calls=log, runners=False)
    partial = [v for v in found.violations if ": I3 pending/" in v]
    assert partial, f"seed {SEED}: syncfs {where} went unnoticed: {found.violations[:5]}"


def test_batch_acknowledged_without_its_last_job_is_caught(tmp_path: Path) -> None:
    """Every job of an acknowledged batch is checked, not only the first: a log
    in which the last job is never linked must lose that job (I1) and no other."""
    rec = record(OPERATIONS["submit-batch"], tmp_path / "recorded")
    last = rec.job_ids[-1]
    log = [c for c in rec.calls if not (c.kind == "link" and last in c.dst)]
    found = verify_operation(rec, tmp_path / "unlinked", SEED, calls=log, runners=False)
    lost = {i for i in rec.job_ids for v in found.violations if f"I1 acknowledged job {i} " in v}
    assert lost == {last}, f"seed {SEED}: {found.violations[:5]}"
