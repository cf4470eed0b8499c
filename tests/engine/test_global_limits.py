"""Spool-wide concurrency: slot files shared by runners on two "hosts"."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jobspool.config import load_config
from jobspool.submit import run_background_job
from tests.conftest import TEST_JOBS, SpoolEnv, wait_until
from tests.support.hosts import (
    LIVENESS_JOBS,
    claims_of,
    start_as,
    two_hosts_on,
    wait_registered,
)
from tests.support.spans import max_overlap, spans
from tests.support.spoolkit import kill_quietly, log_text, read_int, stop_clean

SPAN: dict[str, Any] = {
    "class": "tests.support.spans.Span",
    "allowed_methods": ["run"],
    "concurrency": {"global": 3},
}


def _slot_files(env: SpoolEnv, name: str) -> list[dict[str, str]]:
    folder = env.spool / "slots" / name
    if not folder.exists():
        return []
    return [json.loads((folder / n).read_text()) for n in sorted(os.listdir(folder))]


def test_three_runners_on_two_hosts_never_exceed_the_global_cap_and_use_every_slot(
    env: SpoolEnv, tmp_path: Path
) -> None:
    env.write_config(workers=3, allowed_jobs={**TEST_JOBS, "Span": SPAN})
    out = tmp_path / "spans"
    out.mkdir()
    with two_hosts_on(env, tmp_path) as (mnt_a, mnt_b):
        cfg = load_config(env.config, {"spool": str(mnt_a)})
        runners = [
            start_as(env, "host-a", "--spool", str(mnt_a)),
            start_as(env, "host-a", "--spool", str(mnt_a)),
            start_as(env, "host-b", "--spool", str(mnt_b)),
        ]
        for r in runners:
            wait_registered(env.spool, r.pid)
        ids = [run_background_job("Span", "run", [str(out), 0.4], config=cfg) for _ in range(24)]
        for job_id in ids:
            env.wait_status(job_id, "completed", timeout=60)
        for r in runners:
            stop_clean(r)
    intervals = spans(out)
    assert len(intervals) == 24
    # 3 runners x 3 workers could run 9 at once: the cap holds it to 3, and
    # the claims keep every slot busy at some point.
    assert max_overlap(intervals) == 3
    assert _slot_files(env, "Span") == []  # every slot given back


def test_slots_of_a_sigkilled_runner_are_freed_by_recovery_and_the_queue_drains(
    env: SpoolEnv, tmp_path: Path
) -> None:
    lingerer = {**LIVENESS_JOBS["Lingerer"], "concurrency": {"global": 2}}
    env.write_config(workers=4, allowed_jobs={**TEST_JOBS, "Lingerer": lingerer})
    folders = [tmp_path / f"job{i}" for i in range(4)]
    ids = []
    for i, folder in enumerate(folders):
        folder.mkdir()
        # The first two (claimed first) linger a minute on their first attempt.
        first = 60 if i < 2 else 0.2
        ids.append(
            run_background_job("Lingerer", "linger", [str(folder), first, 0.2], config=env_cfg(env))
        )
    with two_hosts_on(env, tmp_path) as (mnt_a, mnt_b):
        runner_a = start_as(env, "host-a", "--spool", str(mnt_a))
        id_a = wait_registered(env.spool, runner_a.pid)
        wait_until(lambda: len(claims_of(env.spool, id_a)) == 2, 20, "A to claim two")
        pids: list[int] = []
        try:
            held = _slot_files(env, "Lingerer")
            assert [h["runner"] for h in held] == [id_a, id_a]
            assert len(claims_of(env.spool, id_a)) == 2  # the cap, not A's 4 workers
            started = wait_until(
                lambda: [f for f in folders[:2] if (f / "1.pid").exists()][1:] and folders[:2],
                10,
                "A's attempts to start",
            )
            pids = [read_int(f / "1.pid") for f in started]
            runner_b = start_as(env, "host-b", "--spool", str(mnt_b))
            wait_registered(env.spool, runner_b.pid)
            runner_a.kill()
            for job_id in ids:
                env.wait_status(job_id, "completed", timeout=30)
        finally:
            kill_quietly(*pids)
        stop_clean(runner_b)
    assert _slot_files(env, "Lingerer") == []
    assert "slots_freed" in log_text(env)
    firsts = [env.record("completed", j)["attempts"][0]["outcome"] for j in ids]
    assert firsts == ["lost", "lost", "succeeded", "succeeded"]


def env_cfg(env: SpoolEnv) -> Any:
    return load_config(env.config, use_env=False)
