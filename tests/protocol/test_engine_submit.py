"""Every way in: file drop, runjob, the helper, eager mode; reading jobs back."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jobs import SampleJob
from jobspool.context import current_job, set_current
from jobspool.errors import JobNotFound
from jobspool.submit import WaitTimeout, get_job, run_background_job, wait_for_job
from tests.conftest import SpoolEnv
from tests.support.spoolkit import (
    config,
    job_doc,
    outcomes,
    spool_files,
    stop_clean,
    when,
)
from tests.support.testjobs import Marker


@pytest.fixture(autouse=True)
def _no_context_between_tests() -> Iterator[None]:
    """Eager runs execute in this process; never let one test see another's job context."""
    set_current(None)
    yield
    set_current(None)


def test_runjob_param_forms_reach_completed(env: SpoolEnv) -> None:
    cfg = str(env.config)
    forms = {
        "comma": ("p1,p2,p3",),
        "separate": ("p1", "p2"),
        "json": ("--json", '{"data": 1}'),
    }
    ids: dict[str, str] = {}
    for label, args in forms.items():
        out = env.runjob("SampleJob", "process", *args, "--config", cfg)
        assert out.returncode == 0, out.stderr
        assert out.stderr == ""
        job_id = out.stdout.strip()
        assert out.stdout == f"{job_id}\n"
        assert env.status_of(job_id) == "pending"
        ids[label] = job_id
    rec = env.record("pending", ids["comma"])
    assert rec["params"] == ["p1", "p2", "p3"]
    assert [h["action"] for h in rec["history"]] == ["submitted"]
    assert rec["history"][0]["via"] == "cli"

    result = env.burst()
    assert result.returncode == 0, result.stderr
    expected = {
        "comma": {"processed": ["p1", "p2", "p3"], "named": {}, "count": 3},
        "separate": {"processed": ["p1", "p2"], "named": {}, "count": 2},
        "json": {"processed": [], "named": {"data": 1}, "count": 1},
    }
    for label, job_id in ids.items():
        done = env.record("completed", job_id)
        assert done["result"] == expected[label], label
        assert outcomes(done) == ["succeeded"], label
    assert env.files("pending") == []


def test_runjob_options_are_recorded(env: SpoolEnv) -> None:
    cfg = str(env.config)
    out = env.runjob(
        "SampleJob",
        "process",
        "a",
        "--priority",
        "7",
        "--max-attempts",
        "2",
        "--timeout",
        "5",
        "--config",
        cfg,
    )
    assert out.returncode == 0, out.stderr
    rec = env.record("pending", out.stdout.strip())
    assert (rec["priority"], rec["max_attempts"], rec["timeout_seconds"]) == (7, 2, 5.0)
    assert rec["not_before"] is None

    before = time.time()
    out = env.runjob("SampleJob", "process", "b", "--delay", "30", "--config", cfg)
    after = time.time()
    assert out.returncode == 0, out.stderr
    rec = env.record("pending", out.stdout.strip())
    not_before = when(rec["not_before"]).timestamp()
    assert before + 30 <= not_before <= after + 30


def test_runjob_check_validates_and_writes_nothing(env: SpoolEnv) -> None:
    cfg = str(env.config)
    ok = env.runjob("Typed", "add", "1", "2", "--check", "--config", cfg)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == 'ok: Typed.add accepts ["1", "2"]\n'
    bad = env.runjob("Typed", "add", "x", "--check", "--config", cfg)
    assert bad.returncode == 2
    assert "param 'a'" in bad.stderr
    assert spool_files(env) == []


def test_helper_with_class_and_by_name(env: SpoolEnv) -> None:
    cfg = str(env.config)
    by_class = run_background_job(SampleJob, "process", ["p1"], config=cfg)
    by_name = run_background_job(
        "SampleJob", "process", {"data": "example"}, priority=5, config=cfg
    )
    before = time.time()
    delayed = run_background_job(
        "SampleJob", "process", {"data": "later"}, priority=5, delay=30, config=cfg
    )
    after = time.time()
    assert env.record("pending", by_class)["history"][0]["via"] == "python"
    assert get_job(by_name, config=cfg).status == "pending"

    result = env.burst()
    assert result.returncode == 0, result.stderr
    first = env.record("completed", by_class)
    assert first["result"] == {"processed": ["p1"], "named": {}, "count": 1}
    assert first["job"] == "SampleJob"
    second = env.record("completed", by_name)
    assert second["result"] == {"processed": [], "named": {"data": "example"}, "count": 1}
    assert second["priority"] == 5

    view = get_job(delayed, config=cfg)
    assert view.status == "pending"
    assert view.record.priority == 5
    assert view.record.not_before is not None
    assert before + 30 <= view.record.not_before.timestamp() <= after + 30
    assert view.record.attempts == []


def test_get_job_and_wait_for_job(env: SpoolEnv, tmp_path: Path) -> None:
    cfg = config(env)
    marker = tmp_path / "marker"
    job_id = run_background_job(Marker, "touch", [str(marker), "hello"], config=cfg)
    view = get_job(job_id, config=cfg)
    assert (view.status, view.id, view.record.params) == ("pending", job_id, [str(marker), "hello"])
    with pytest.raises(WaitTimeout):
        wait_for_job(job_id, timeout=0.3, config=cfg)
    with pytest.raises(JobNotFound):
        get_job("20200101-000000-000000-00000000", config=cfg)
    with pytest.raises(JobNotFound):
        wait_for_job("20200101-000000-000000-00000000", timeout=0.2, config=cfg)

    runner = env.start_runner()
    done = wait_for_job(job_id, timeout=20, config=cfg)
    assert done.status == "completed"
    assert done.record.result == "hello"
    assert marker.read_text() == "hello"
    assert get_job(job_id, config=cfg).status == "completed"
    stop_clean(runner)


def test_eager_mode_from_environment_runs_in_process(
    env: SpoolEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSPOOL_EAGER", "1")
    marker = tmp_path / "marker"
    job_id = run_background_job("Marker", "touch", [str(marker)], config=str(env.config))
    assert marker.read_text() == "ran"  # ran before the call returned
    view = get_job(job_id, config=str(env.config))
    assert view.status == "completed"
    assert view.record.result == "ran"
    assert [a.outcome.value for a in view.record.attempts] == ["succeeded"]
    assert wait_for_job(job_id, timeout=1, config=str(env.config)).status == "completed"
    assert spool_files(env) == []


def test_eager_mode_leaves_no_job_context_behind(
    env: SpoolEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSPOOL_EAGER", "1")
    assert current_job() is None  # the fixture cleared it
    run_background_job("Marker", "touch", [str(tmp_path / "m")], config=str(env.config))
    # Outside a job, current_job() must say so again.
    assert current_job() is None


def test_eager_mode_failure_is_recorded_as_failed(
    env: SpoolEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSPOOL_EAGER", "1")
    job_id = run_background_job("Failing", "bad", ["nope"], config=str(env.config))
    view = get_job(job_id)
    assert view.status == "failed"
    assert view.record.error is not None
    assert (view.record.error.type, view.record.error.message) == ("BadInput", "nope")
    assert view.record.result is None
    assert spool_files(env) == []


def test_eager_mode_from_config_through_runjob(env: SpoolEnv, tmp_path: Path) -> None:
    env.write_config(eager=True)
    marker = tmp_path / "marker"
    out = env.runjob("Marker", "touch", str(marker), "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() != ""
    assert marker.read_text() == "ran"
    assert spool_files(env) == []


def test_dropped_file_name_is_its_id_and_a_reused_name_gets_a_new_id(
    env: SpoolEnv, tmp_path: Path
) -> None:
    first, second, third = (tmp_path / n for n in ("m1", "m2", "m3"))
    env.drop("dup.json", job_doc("Marker", "touch", [str(first)]))
    env.drop("not an id!.json", job_doc("Marker", "touch", [str(third)]))
    assert env.burst().returncode == 0
    original = env.record("completed", "dup")
    assert original["params"] == [str(first)]
    assert original["created_at"] is not None

    env.drop("dup.json", job_doc("Marker", "touch", [str(second)]))
    assert env.burst().returncode == 0
    assert first.exists() and second.exists() and third.exists()
    assert env.record("completed", "dup") == original  # never replaced
    completed = [
        json.loads((env.spool / "completed" / n).read_text()) for n in env.files("completed")
    ]
    assert len(completed) == 3
    renamed = {r["original_name"]: r for r in completed if r["id"] != "dup"}
    assert set(renamed) == {"dup.json", "not an id!.json"}
    assert renamed["dup.json"]["params"] == [str(second)]
    assert renamed["not an id!.json"]["params"] == [str(third)]
    for rec in renamed.values():
        assert env.files("completed").count(f"{rec['id']}.json") == 1
    assert env.files("pending") == []


def test_created_at_of_a_dropped_job_comes_from_the_file(env: SpoolEnv, tmp_path: Path) -> None:
    path = env.drop("old.json", job_doc("Marker", "touch", [str(tmp_path / "m")]))
    stamp = time.time() - 3600
    os.utime(path, (stamp, stamp))
    assert env.burst().returncode == 0
    created = when(env.record("completed", "old")["created_at"])
    assert abs(created.timestamp() - stamp) < 1
    assert created.utcoffset() == timedelta(0)
