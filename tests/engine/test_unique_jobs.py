"""Unique jobs through real runners: each window ends at its transition, a
runner's crash and recovery, the CLI (runjob --unique, show, unique)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from jobspool import resubmit_job, unique
from jobspool.errors import Conflict
from jobspool.submit import run_background_job
from tests.conftest import TEST_JOBS, SpoolEnv, wait_until
from tests.support.hosts import start_as, wait_registered
from tests.support.spoolkit import config, read_int, stop_clean

JOBS = {
    **TEST_JOBS,
    "Gate": {"class": "tests.support.testjobs.Gate", "allowed_methods": ["wait"]},
}


def gate(env: SpoolEnv, folder: Path, until: str) -> str:
    folder.mkdir(exist_ok=True)
    return run_background_job(
        "Gate",
        "wait",
        [str(folder / "started"), str(folder / "release")],
        config=config(env),
        unique={"key": "gate-{release}", "until": until},
    )


def existing(job_id: str) -> bool:
    return unique.is_existing(job_id)


def lock_names(env: SpoolEnv) -> list[str]:
    d = env.spool / unique.DIR
    return sorted(os.listdir(d)) if d.exists() else []


def lock_job(env: SpoolEnv, key: str) -> str | None:
    path = env.spool / unique.DIR / unique.lock_name(key)
    return str(json.loads(path.read_text())["job"]) if path.exists() else None


@pytest.mark.parametrize("until", ["queued", "started", "finished"])
def test_each_window_ends_at_its_transition_through_a_runner(
    env: SpoolEnv, tmp_path: Path, until: str
) -> None:
    env.write_config(allowed_jobs=JOBS, workers=1)
    folder = tmp_path / "gate"
    key = f"gate-{folder / 'release'}"
    first = gate(env, folder, until)
    again = gate(env, folder, until)
    assert again == first and existing(again)  # pending: every window holds it
    runner = env.start_runner()
    read_int(folder / "started")
    env.wait_status(first, "running")
    while_running = gate(env, folder, until)
    if until == "queued":
        # Released at the claim: a second job queues behind the running one.
        assert while_running != first and not existing(while_running)
        assert lock_job(env, key) == while_running
    else:
        assert while_running == first and existing(while_running)
        assert lock_job(env, key) == first
    (folder / "release").write_text("go")
    env.wait_status(first, "completed")
    if until == "queued":
        env.wait_status(while_running, "completed")
    wait_until(lambda: lock_names(env) == [], 10, "the key to be released")
    after = gate(env, folder, until)
    assert not existing(after) and after not in (first, while_running)
    env.wait_status(after, "completed")
    stop_clean(runner)
    wait_until(lambda: lock_names(env) == [], 10, "the last key to be released")


@pytest.mark.parametrize("until", ["started", "finished"])
def test_a_retry_waiting_keeps_the_key_only_until_finished(
    env: SpoolEnv, tmp_path: Path, until: str
) -> None:
    counter = str(tmp_path / "counter")
    spec = {"key": "flaky-{0}", "until": until}
    first = run_background_job("Flaky", "ask_retry", [counter, 60], config=config(env), unique=spec)
    runner = env.start_runner()
    wait_until(
        lambda: env.status_of(first) == "pending" and env.record("pending", first)["attempts"],
        20,
        "the first attempt to ask for a retry",
    )
    if until == "started":
        wait_until(lambda: lock_names(env) == [], 10, "the release as the attempt ended")
    second = run_background_job(
        "Flaky", "ask_retry", [counter, 60], config=config(env), unique=spec
    )
    if until == "started":
        assert second != first and not existing(second)
    else:
        assert second == first and existing(second)
    stop_clean(runner)


def running_attempts(env: SpoolEnv, job_id: str) -> list[str]:
    """The outcomes recorded in the job's running file (its claim)."""
    for path in (env.spool / "running").glob(f"{job_id}~*.json"):
        return [a["outcome"] for a in json.loads(path.read_text())["attempts"]]
    return []


def test_a_key_held_across_a_runner_crash_is_released_after_recovery(
    env: SpoolEnv, tmp_path: Path
) -> None:
    env.write_config(allowed_jobs=JOBS)
    held, lost = tmp_path / "held", tmp_path / "lost"
    kept = gate(env, held, "finished")
    dropped = gate(env, lost, "started")
    held_key, lost_key = f"gate-{held / 'release'}", f"gate-{lost / 'release'}"
    first = start_as(env, "host-a")
    wait_until(
        lambda: (held / "started").exists() and (lost / "started").exists(), 20, "both attempts"
    )
    second = start_as(env, "host-b")
    wait_registered(env.spool, second.pid)
    for folder in (held, lost):
        (folder / "started").unlink()
    first.kill()  # SIGKILL while both jobs run on it
    # The second runner recovers them (a lost attempt each) and runs them again.
    wait_until(
        lambda: (held / "started").exists() and (lost / "started").exists(),
        30,
        "the recovered jobs to start again",
    )
    assert running_attempts(env, kept) == running_attempts(env, dropped) == ["lost"]
    # until=finished: the job still holds its key through the lost attempt.
    assert lock_job(env, held_key) == kept
    assert gate(env, held, "finished") == kept
    # until=started: the lost first attempt ended the window.
    assert lock_job(env, lost_key) is None
    fresh_lost = gate(env, lost, "started")
    assert not existing(fresh_lost) and fresh_lost != dropped
    (held / "release").write_text("go")
    env.wait_status(kept, "completed")
    wait_until(lambda: lock_job(env, held_key) is None, 10, "the release at completion")
    fresh = gate(env, held, "finished")
    assert not existing(fresh) and fresh != kept
    (lost / "release").write_text("go")
    for job_id in (dropped, fresh_lost, fresh):
        env.wait_status(job_id, "completed")
    wait_until(lambda: lock_names(env) == [], 10, "every key to be released")
    stop_clean(second)


def test_runjob_unique_show_list_and_cancel(env: SpoolEnv) -> None:
    cfg = str(env.config)
    args = ("Marker", "touch", "/nonexistent/m", "--unique", "m-{0}", "--config", cfg)
    first = env.runjob(*args)
    assert first.returncode == 0 and first.stderr == "", first.stderr
    job_id = first.stdout.strip()
    before = sorted(os.listdir(env.spool / "pending"))
    second = env.runjob(*args)
    assert second.returncode == 0
    assert second.stdout == f"{job_id}\n"
    assert second.stderr == f"unique key held by job {job_id}: nothing queued\n"
    assert sorted(os.listdir(env.spool / "pending")) == before

    shown = env.cli("show", job_id, "--config", cfg)
    assert "unique:    m-/nonexistent/m  (until finished, for 3600s; holds the lock)" in (
        shown.stdout
    )
    shown_json = json.loads(env.cli("show", job_id, "--json", "--config", cfg).stdout)
    assert shown_json["unique_lock_held"] is True
    assert shown_json["unique"] == {
        "key": "m-/nonexistent/m",
        "until": "finished",
        "for_seconds": 3600,
    }
    listed = env.cli("unique", "--json", "--config", cfg)
    assert listed.returncode == 0, listed.stderr
    entries: list[dict[str, Any]] = json.loads(listed.stdout)
    assert [(e["key"], e["job"], e["until"], e["held"]) for e in entries] == [
        ("m-/nonexistent/m", job_id, "finished", True)
    ]
    assert entries[0]["expires"]
    text = env.cli("unique", "--config", cfg).stdout
    assert text.startswith(f"m-/nonexistent/m  job {job_id}  until finished  expires ")

    bad = env.runjob("Marker", "touch", "x", "--unique", "{0.__class__}", "--config", cfg)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("runjob: error: unique.key: ") and bad.stderr.count("\n") == 1

    cancelled = env.cli("cancel", job_id, "--config", cfg)
    assert cancelled.returncode == 0, cancelled.stderr
    assert lock_names(env) == []
    assert "does not hold the lock" in env.cli("show", job_id, "--config", cfg).stdout
    assert env.cli("unique", "--config", cfg).stdout == "no unique keys held\n"
    third = env.runjob(*args)
    assert third.returncode == 0 and third.stdout.strip() != job_id


def test_a_runner_sweeps_locks_whose_release_was_lost(env: SpoolEnv, tmp_path: Path) -> None:
    marker = str(tmp_path / "ran")
    spec = {"key": "m-{0}"}
    job_id = run_background_job("Marker", "touch", [marker], config=config(env), unique=spec)
    name = unique.lock_name(f"m-{marker}")
    saved = (env.spool / unique.DIR / name).read_bytes()
    assert env.burst().returncode == 0
    assert env.status_of(job_id) == "completed" and lock_names(env) == []
    # As if the release had been lost: the lock is back, naming a finished job.
    (env.spool / unique.DIR / name).write_bytes(saved)
    (env.spool / unique.DIR / unique.lock_name("junk")).write_bytes(b"\x00junk")
    result = env.burst()
    assert result.returncode == 0, result.stderr
    assert lock_names(env) == []
    log = (env.spool / "logs" / "background_jobs.log").read_text()
    assert f"m-{marker}: job {job_id} is completed, past until=finished" in log
    assert any(n.startswith("unique.") for n in os.listdir(env.spool / "corrupt"))


def test_resubmitting_while_another_job_holds_the_key_is_refused(env: SpoolEnv) -> None:
    """Edit and resubmit of a unique job whose key is held writes nothing and
    says which job holds it (it never reports the holder as the new job)."""
    failing = {
        **TEST_JOBS["Failing"],
        "unique": {"key": "fail-{message}"},
        "retry": {"max_attempts": 1},
    }
    env.write_config(allowed_jobs={**JOBS, "Failing": failing})
    cfg = config(env)
    bad = run_background_job("Failing", "bad", ["boom"], config=cfg)
    assert env.burst().returncode == 0
    assert env.status_of(bad) == "failed"
    holder = run_background_job("Failing", "bad", ["boom"], config=cfg)
    assert not existing(holder)  # the failed job let go of the key
    before = env.files("pending")
    with pytest.raises(Conflict, match=f"job {holder} holds this job's unique key"):
        resubmit_job(bad, ["boom"], config=cfg)
    assert env.files("pending") == before
