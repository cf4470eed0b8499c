"""Edited job code takes effect without restarting the runner.

The fork server imports job modules once and forks every attempt from that
warm state, with spare children forked ahead of need. An edited module must
still be imported afresh before the next attempt, and spares forked with the
old code must never run a job.
"""

from __future__ import annotations

import os
import time

from tests.conftest import SpoolEnv
from tests.support.spoolkit import stop_clean

MODULE = """
class Version:
    def get(self) -> str:
        return {version!r}
"""


def _write_module(env: SpoolEnv, version: str, stamp: float) -> None:
    path = env.root / "versioned_job.py"
    path.write_text(MODULE.format(version=version))
    os.utime(path, (stamp, stamp))  # a distinct mtime even on coarse clocks


def test_an_edited_job_module_is_used_by_the_next_attempt(env: SpoolEnv) -> None:
    start = time.time() - 100
    _write_module(env, "v1", start)
    jobs = {
        **env.settings["allowed_jobs"],
        "Version": {"class": "versioned_job.Version", "allowed_methods": ["get"]},
    }
    env.write_config(allowed_jobs=jobs)
    runner = env.start_runner()

    first = env.runjob("Version", "get", "--config", str(env.config)).stdout.strip()
    assert env.wait_status(first, "completed")["result"] == "v1"

    _write_module(env, "v2", start + 10)
    results = []
    for _ in range(3):  # more than one attempt: no spare may keep the old code
        job_id = env.runjob("Version", "get", "--config", str(env.config)).stdout.strip()
        results.append(env.wait_status(job_id, "completed")["result"])
    assert results == ["v2", "v2", "v2"]
    stop_clean(runner)
