"""Two "hosts" sharing one spool: every scenario runs on two kinds of mounts.

- bindfs: two bindfs mounts of the test's spool directory; the test reads
  results from the underlying directory, the way a third machine would.
- juicefs: two FUSE mounts of one JuiceFS volume (a real distributed
  filesystem: sqlite metadata, local object storage) with JuiceFS's default
  1 s kernel caches, so one host sees the other's changes late; the test
  reads results through a third mount with those caches off.

Each runner plays its own host (JOBSPOOL_HOST=host-a / host-b) and reaches
the spool through its own mount, so, as on a network filesystem, a change
made through one mount raises no inotify event on the other, and runners
judge each other by the heartbeat lease alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from jobspool.config import Config, load_config
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv, wait_until
from tests.support.hosts import (
    allow_liveness_jobs,
    bind_mount,
    claims_of,
    listed_pids,
    measure_until,
    start_as,
    wait_registered,
)
from tests.support.juicefs import two_hosts
from tests.support.spoolkit import (
    is_gone,
    job_files_everywhere,
    kill_quietly,
    ledger_lines,
    outcomes,
    read_int,
    stop_clean,
)

MARGIN = 1.0


@pytest.fixture(params=["bindfs", "juicefs"])
def mounts(
    request: pytest.FixtureRequest, env: SpoolEnv, tmp_path: Path
) -> Iterator[tuple[Path, Path]]:
    """The spool as hosts A and B mount it; unmounted after the runners end.

    On JuiceFS, the test's spool (``env.spool`` and the config's) is the
    spool as the uncached observer mount sees it, so every read of the test
    goes through the filesystem.
    """
    with contextlib.ExitStack() as stack:
        if request.param == "bindfs":
            env.spool.mkdir(parents=True, exist_ok=True)
            mnt_a = stack.enter_context(bind_mount(env.spool, tmp_path / "mnt-a"))
            mnt_b = stack.enter_context(bind_mount(env.spool, tmp_path / "mnt-b"))
        else:
            hosts = stack.enter_context(two_hosts(tmp_path / "juicefs"))
            env.spool = hosts.observer
            env.write_config(spool=str(hosts.observer))
            mnt_a, mnt_b = hosts.a, hosts.b
        try:
            yield mnt_a, mnt_b
        finally:
            # A runner still inside a mount would keep it busy.
            for runner in env.runners:
                runner.kill()


def _config_for(env: SpoolEnv, mount: Path) -> Config:
    return load_config(env.config, {"spool": str(mount)})


def _absent(path: Path) -> bool:
    return not path.exists()


def _only_completed(env: SpoolEnv, job_ids: list[str]) -> None:
    everywhere = job_files_everywhere(env)
    assert everywhere["completed"] == sorted(f"{j}.json" for j in job_ids)
    for status, names in everywhere.items():
        if status != "completed":
            assert names == [], (status, names)
    corrupt = env.spool / "corrupt"
    assert not corrupt.exists() or list(corrupt.iterdir()) == []


def test_jobs_submitted_through_both_mounts_complete_exactly_once(
    env: SpoolEnv, tmp_path: Path, mounts: tuple[Path, Path]
) -> None:
    mnt_a, mnt_b = mounts
    ledger = tmp_path / "ledger"
    runner_a = start_as(env, "host-a", "--spool", str(mnt_a))
    runner_b = start_as(env, "host-b", "--spool", str(mnt_b))
    id_a = wait_registered(env.spool, runner_a.pid)
    id_b = wait_registered(env.spool, runner_b.pid)
    cfg_a, cfg_b = _config_for(env, mnt_a), _config_for(env, mnt_b)
    job_ids = []
    for _ in range(100):
        job_ids.append(run_background_job("Ledger", "record", [str(ledger)], config=cfg_a))
        job_ids.append(run_background_job("Ledger", "record", [str(ledger)], config=cfg_b))
    wait_until(
        lambda: len(job_files_everywhere(env)["completed"]) == 200, 120, "all 200 jobs to complete"
    )
    stop_clean(runner_a)
    stop_clean(runner_b)

    runs = Counter(job_id for job_id, _attempt in ledger_lines(ledger))
    assert set(runs) == set(job_ids)
    assert [j for j, n in runs.items() if n != 1] == [], "a job ran more than once"
    ran_on: Counter[str] = Counter()
    for job_id in job_ids:
        rec = env.record("completed", job_id)
        assert outcomes(rec) == ["succeeded"], job_id
        ran_on[rec["attempts"][0]["runner"]] += 1
    assert set(ran_on) == {id_a, id_b}, ran_on
    _only_completed(env, job_ids)


def test_sigkilled_runner_on_one_host_is_recovered_by_the_other_after_the_lease(
    env: SpoolEnv, tmp_path: Path, mounts: tuple[Path, Path]
) -> None:
    mnt_a, mnt_b = mounts
    allow_liveness_jobs(env)
    lease, beat = float(env.settings["lease_seconds"]), float(env.settings["heartbeat_seconds"])
    cfg_a = _config_for(env, mnt_a)
    folders = [tmp_path / "job0", tmp_path / "job1"]
    job_ids = []
    for folder in folders:
        folder.mkdir()
        # First attempt lingers a minute; the rerun takes 0.3 s.
        job_ids.append(
            run_background_job("Lingerer", "linger", [str(folder), 60, 0.3, True], config=cfg_a)
        )
    runner_a = start_as(env, "host-a", "--spool", str(mnt_a))
    pids = [read_int(f / "1.pid") for f in folders]
    grandchildren = [read_int(f / "1.grandchild.pid") for f in folders]
    try:
        id_a = wait_registered(env.spool, runner_a.pid)
        wait_until(
            lambda: listed_pids(env.spool, id_a) == set(pids), 10, "A's heartbeat to list both"
        )
        runner_b = start_as(env, "host-b", "--spool", str(mnt_b))
        id_b = wait_registered(env.spool, runner_b.pid)
        runner_a.kill()
        took = measure_until(
            lambda: not claims_of(env.spool, id_a), lease + 15, "B to recover A's claims"
        )
        wait_until(
            lambda: all(is_gone(p) for p in pids + grandchildren),
            3,
            "A's attempt trees to die with A",
        )
        records = [env.wait_status(j, "completed", timeout=20) for j in job_ids]
    finally:
        kill_quietly(*pids, *grandchildren)
    stop_clean(runner_b)
    assert lease - 2 * beat <= took <= lease + beat + MARGIN, f"recovery took {took:.2f}s"
    for rec in records:
        assert outcomes(rec) == ["lost", "succeeded"]
        assert [a["runner"] for a in rec["attempts"]] == [id_a, id_b]
        assert rec["result"] == 2
    _only_completed(env, job_ids)


def _pickup_latency(env: SpoolEnv, submit: Callable[[], Path], poll: float) -> float:
    """Seconds from a job appearing in pending/ (submit returned) until it is claimed."""
    pending = submit()
    took = measure_until(partial(_absent, pending), poll + 10, f"{pending.name} to be claimed")
    wait_until(
        lambda: f"{pending.stem}.json" in job_files_everywhere(env)["completed"],
        20,
        f"{pending.name} to complete",
    )
    return took


def _submitter(env: SpoolEnv, mount: Path, tmp_path: Path) -> Callable[[], Path]:
    """Submits a Marker job through ``mount`` (the spool's link publish); returns its file."""
    cfg = _config_for(env, mount)

    def submit() -> Path:
        job_id = run_background_job("Marker", "touch", [str(tmp_path / "m")], config=cfg)
        return env.spool / "pending" / f"{job_id}.json"

    return submit


def _dropper(env: SpoolEnv, mount: Path, tmp_path: Path) -> Callable[[], Path]:
    """Drops a hand-written job through ``mount`` the careful way (tmp/ + rename)."""
    count = iter(range(1000))

    def drop() -> Path:
        name = f"dropped-{mount.name}-{next(count)}.json"
        tmp = mount / "tmp" / name
        doc = {"job": "Marker", "method": "touch", "params": [str(tmp_path / name)]}
        tmp.write_text(json.dumps(doc))
        os.rename(tmp, mount / "pending" / name)
        return env.spool / "pending" / name

    return drop


def test_job_written_through_one_mount_is_found_by_the_other_hosts_rescan(
    env: SpoolEnv, tmp_path: Path, mounts: tuple[Path, Path]
) -> None:
    mnt_a, mnt_b = mounts
    poll = 2.0
    runner_b = start_as(env, "host-b", "--spool", str(mnt_b), "--poll", str(poll))
    wait_registered(env.spool, runner_b.pid)
    # Through A, B's mount gets no event, so only B's rescan can find them.
    latencies = []
    for submit in (_submitter(env, mnt_a, tmp_path), _dropper(env, mnt_a, tmp_path)):
        for _ in range(3):
            latencies.append(_pickup_latency(env, submit, poll))
            # Shift the next write against the rescan cycle.
            time.sleep(0.45)
    stop_clean(runner_b)
    assert max(latencies) <= poll + MARGIN, latencies
    assert max(latencies) > 0.3, f"picked up too fast for a rescan: {latencies}"
    assert len(job_files_everywhere(env)["completed"]) == 6


def test_job_dropped_through_the_runners_own_mount_is_picked_up_at_once(
    env: SpoolEnv, tmp_path: Path, mounts: tuple[Path, Path]
) -> None:
    """The control for the test above: on its own mount the watcher sees new files."""
    _mnt_a, mnt_b = mounts
    poll = 2.0
    runner_b = start_as(env, "host-b", "--spool", str(mnt_b), "--poll", str(poll))
    wait_registered(env.spool, runner_b.pid)
    drop = _dropper(env, mnt_b, tmp_path)
    latencies = [_pickup_latency(env, drop, poll) for _ in range(5)]
    stop_clean(runner_b)
    assert statistics.median(latencies) < 0.3, latencies
