"""Slot and token files: races, lost replies, hostile files, and repair by the holder."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from jobspool import slots, tokens
from jobspool.fsops import FileOps, StrPath
from jobspool.spool import Spool
from jobspool.submit import run_background_job
from tests.conftest import TEST_JOBS, SpoolEnv, wait_until
from tests.support.hosts import wait_registered
from tests.support.spoolkit import config, log_text, stop_clean

HOLDER = tokens.Holder("runner-a", "job-1", "job-1~runner-a~1")
MARKER: dict[str, Any] = {**TEST_JOBS["Marker"], "concurrency": {"global": 1}}


class LostReply(FileOps):
    """A link that succeeds but reports EEXIST, as a retransmitted NFS request can."""

    def link(self, src: StrPath, dst: StrPath) -> None:
        os.link(src, dst)
        raise FileExistsError(17, "File exists", str(dst))


def test_a_link_that_succeeded_but_said_eexist_is_recognised_as_ours(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", ops=LostReply())
    got = slots.take(spool, "Marker", 2, HOLDER)
    assert got is not None and got.path.name == "0"
    assert sorted(os.listdir(tmp_path / "s" / "slots" / "Marker")) == ["0"]
    assert tokens.give_back(spool, got)
    assert os.listdir(tmp_path / "s" / "slots" / "Marker") == []


def test_a_taken_number_is_skipped_and_a_full_set_refuses(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    first = slots.take(spool, "Marker", 2, HOLDER)
    second = slots.take(spool, "Marker", 2, HOLDER)
    assert first is not None and second is not None
    assert (first.path.name, second.path.name) == ("0", "1")
    assert slots.take(spool, "Marker", 2, HOLDER) is None
    found = slots.scan(spool)
    assert found.in_use("Marker") == 2 and found.holders() == {"runner-a"}


def test_giving_back_never_removes_a_file_that_replaced_ours(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    mine = slots.take(spool, "Marker", 1, HOLDER)
    assert mine is not None
    os.unlink(mine.path)  # freed by recovery, then taken by another runner
    other = slots.take(spool, "Marker", 1, tokens.Holder("runner-b", "job-2", "t"))
    assert other is not None and other.path == mine.path
    assert not tokens.give_back(spool, mine)
    assert json.loads(mine.path.read_text())["runner"] == "runner-b"


def test_a_slots_folder_that_is_a_link_is_never_used(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "s" / "slots").mkdir()
    (tmp_path / "s" / "slots" / "Marker").symlink_to(elsewhere)
    try:
        slots.take(spool, "Marker", 1, HOLDER)
    except tokens.NotAFolder:
        pass
    else:
        raise AssertionError("a link in place of slots/Marker was used")
    assert os.listdir(elsewhere) == []
    assert "slots/Marker" in next(iter(slots.scan(spool).refused)).as_posix()


def test_bad_slot_files_are_reported_moved_away_and_never_believed(
    env: SpoolEnv, tmp_path: Path
) -> None:
    env.write_config(allowed_jobs={**TEST_JOBS, "Marker": {**MARKER, "concurrency": {"global": 3}}})
    folder = env.spool / "slots" / "Marker"
    folder.mkdir(parents=True)
    (folder / "0").write_bytes(b"\xff garbage")
    target = tmp_path / "target"
    target.write_text('{"runner": "x", "job": "y", "token": "z"}')
    (folder / "1").symlink_to(target)
    (folder / "2").mkdir()
    assert len(slots.scan(Spool(env.spool)).refused) == 3
    job = run_background_job("Marker", "touch", [str(tmp_path / "ran")], config=config(env))
    runner = env.start_runner()
    env.wait_status(job, "completed")
    stop_clean(runner)
    assert target.read_text() == '{"runner": "x", "job": "y", "token": "z"}'
    assert os.listdir(folder) == []
    assert log_text(env).count("slot_refused") == 3
    assert len([n for n in os.listdir(env.spool / "corrupt") if not n.endswith(".txt")]) == 3


def test_a_live_runner_repairs_its_own_slot_that_no_claim_carries(
    env: SpoolEnv, tmp_path: Path
) -> None:
    """As after a crash between publishing a record and giving its slot back."""
    env.write_config(allowed_jobs={**TEST_JOBS, "Marker": MARKER})
    runner = env.start_runner()
    runner_id = wait_registered(env.spool, runner.pid)
    folder = env.spool / "slots" / "Marker"
    folder.mkdir(parents=True, exist_ok=True)
    stale = {"runner": runner_id, "job": "gone", "token": f"gone~{runner_id}~1"}
    (folder / "0").write_text(json.dumps(stale))
    job = run_background_job("Marker", "touch", [str(tmp_path / "ran")], config=config(env))
    env.wait_status(job, "completed", timeout=20)
    wait_until(lambda: "slot_repaired" in log_text(env), 5, "the repair to be logged")
    stop_clean(runner)
    assert os.listdir(folder) == []


def test_a_live_runners_slot_is_never_taken_by_another(env: SpoolEnv, tmp_path: Path) -> None:
    """A slot whose holder is alive and whose claim stands blocks everyone else."""
    env.write_config(allowed_jobs={**TEST_JOBS, "Marker": MARKER})
    runner = env.start_runner()
    other_id = wait_registered(env.spool, env.start_runner().pid)
    wait_registered(env.spool, runner.pid)
    folder = env.spool / "slots" / "Marker"
    folder.mkdir(parents=True, exist_ok=True)
    # Held by a live runner for a claim that stands in running/.
    claim = f"held~{other_id}~1"
    (env.spool / "running" / f"{claim}.json").write_text(
        json.dumps({"job": "Marker", "method": "touch", "params": [str(tmp_path / "h")]})
    )
    (folder / "0").write_text(json.dumps({"runner": other_id, "job": "held", "token": claim}))
    job = run_background_job("Marker", "touch", [str(tmp_path / "ran")], config=config(env))
    deadline = time.monotonic() + 4.0  # past the lease (3 s) and many sweeps
    while time.monotonic() < deadline:
        assert env.status_of(job) == "pending"
        time.sleep(0.05)
    assert json.loads((folder / "0").read_text())["runner"] == other_id
