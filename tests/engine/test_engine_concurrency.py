"""Several runners on one spool: every claim is won exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv, wait_until
from tests.support.spoolkit import config, corrupt_entries, ledger_lines, stop_clean

JOBS = 500


def test_two_runners_complete_500_jobs_exactly_once(env: SpoolEnv, tmp_path: Path) -> None:
    env.write_config(durable=False)  # tmpfs-like speed; the protocol is the same
    cfg = config(env)
    ledger = tmp_path / "ledger"
    ids = [
        run_background_job("Ledger", "record", [str(ledger)], config=cfg) for _ in range(JOBS // 2)
    ]
    runners = [env.start_runner(), env.start_runner()]
    wait_until(
        lambda: len(list((env.spool / "runners").glob("*.json"))) == 2,
        30,
        "both runners to register",
    )
    # The second half arrives while both runners are claiming.
    ids += [
        run_background_job("Ledger", "record", [str(ledger)], config=cfg)
        for _ in range(JOBS - JOBS // 2)
    ]
    assert len(set(ids)) == JOBS
    wait_until(lambda: len(env.files("completed")) >= JOBS, 90, "all jobs to complete")
    for runner in runners:
        stop_clean(runner)

    lines = ledger_lines(ledger)
    seen = Counter(job_id for job_id, _attempt in lines)
    assert sorted(seen) == sorted(ids)
    assert [job_id for job_id, n in seen.items() if n != 1] == []
    assert {attempt for _id, attempt in lines} == {1}
    assert env.files("completed") == sorted(f"{i}.json" for i in ids)
    for status in ("pending", "running", "failed", "cancelled"):
        assert env.files(status) == [], status
    assert corrupt_entries(env) == []
    owners = Counter(env.record("completed", i)["attempts"][0]["runner"] for i in ids)
    assert len(owners) == 2, owners  # both runners took part
    for job_id in ids[:20]:
        rec = env.record("completed", job_id)
        assert rec["result"] == job_id
        assert len(rec["attempts"]) == 1
