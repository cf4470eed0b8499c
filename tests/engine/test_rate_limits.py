"""Rate limits across runners: token files per fixed window, shared by two runners."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jobspool.config import load_config
from jobspool.submit import run_background_job
from tests.conftest import TEST_JOBS, SpoolEnv
from tests.support.hosts import wait_registered
from tests.support.spans import spans
from tests.support.spoolkit import stop_clean, when

LIMIT = 4
JOBS = 16
SPAN: dict[str, Any] = {
    "class": "tests.support.spans.Span",
    "allowed_methods": ["run"],
    "rate": f"{LIMIT}/s",
}


def test_two_runners_together_start_no_more_than_the_rate_per_window(
    env: SpoolEnv, tmp_path: Path
) -> None:
    env.write_config(workers=4, allowed_jobs={**TEST_JOBS, "Span": SPAN})
    out = tmp_path / "spans"
    out.mkdir()
    runners = [env.start_runner(), env.start_runner()]
    for r in runners:
        wait_registered(env.spool, r.pid)
    cfg = load_config(env.config, use_env=False)
    ids = [run_background_job("Span", "run", [str(out), 0], config=cfg) for _ in range(JOBS)]
    for job_id in ids:
        env.wait_status(job_id, "completed", timeout=30)
    for r in runners:
        stop_clean(r)

    # Each claim took one numbered token in its window: never more than LIMIT.
    windows = env.spool / "rate" / "Span"
    per_window = {w: len(os.listdir(windows / w)) for w in os.listdir(windows)}
    assert sum(per_window.values()) == JOBS
    assert max(per_window.values()) <= LIMIT
    assert len(per_window) >= JOBS // LIMIT
    assert len(spans(out)) == JOBS
    records = [env.record("completed", j) for j in ids]
    # When each attempt was launched, as its runner recorded it (just after the claim).
    starts = sorted(when(r["attempts"][0]["started_at"]).timestamp() for r in records)
    # 16 claims at 4 per window need 4 windows: the first and the last claim
    # are more than two whole windows apart (without the limit all 16 start
    # within half a second).
    assert starts[-1] - starts[0] >= 2.0
    # Fixed windows allow LIMIT at the end of one and LIMIT at the start of
    # the next (the design's stated edge, with no clock skew here): never more
    # than 2 * LIMIT in any one-second stretch.
    most = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    assert most <= 2 * LIMIT
    owners = {r["attempts"][0]["runner"] for r in records}
    assert len(owners) == 2
