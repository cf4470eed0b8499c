"""Recurring schedules on a real spool with real runner processes: claim
races, a claim that answered EEXIST after it succeeded, a claimer that died
between claim and publish, overlap, and reloads."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobspool.recurring import parse_stamp, stamp, tick_job_id
from jobspool.spool import Spool
from jobspool.ticks import Ticks, decode_claim, tick_record
from tests.conftest import REPO, SpoolEnv, wait_until
from tests.support.schedtimes import recent_daily
from tests.support.spoolkit import job_files_everywhere, log_text, stop_clean

RACERS = 12


def schedule(**fields: Any) -> dict[str, Any]:
    return {"job": "Typed", "method": "add", "params": [1, 2], **fields}


def with_schedules(env: SpoolEnv, **schedules: dict[str, Any]) -> None:
    env.write_config(schedules=schedules)


def spool_of(env: SpoolEnv) -> Spool:
    return Spool.open(env.spool, durable=False)


def tick_jobs(env: SpoolEnv, name: str) -> list[str]:
    """Every job file of the schedule's ticks, in any status (claims as ids)."""
    out = []
    for status, names in job_files_everywhere(env).items():
        for file in names:
            job_id = file.split("~")[0].removesuffix(".json")
            if job_id.startswith(f"sched-{name}-"):
                out.append(f"{status}:{job_id}")
    return sorted(out)


def ids_of(entries: list[str]) -> list[str]:
    return sorted(e.split(":", 1)[1] for e in entries)


def folder(env: SpoolEnv, name: str) -> Path:
    return env.spool / "schedules" / name


def claims(env: SpoolEnv, name: str) -> list[str]:
    return sorted(n for n in os.listdir(folder(env, name)) if n.endswith(".claim"))


def done_marks(env: SpoolEnv, name: str) -> list[str]:
    path = folder(env, name)
    return sorted(n for n in os.listdir(path) if n.endswith(".done")) if path.exists() else []


def last_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def test_many_processes_claiming_one_tick_queue_exactly_one_job(env: SpoolEnv) -> None:
    with_schedules(env, race=schedule(every="1h"))
    tick = last_hour()
    go = env.root / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.tickrace",
                str(env.config),
                "race",
                stamp(tick),
                str(go),
                f"racer{i}",
            ],
            env=env.environ(),
            cwd=REPO,
        )
        for i in range(RACERS)
    ]
    go.write_text("go")
    assert [p.wait(60) for p in procs] == [0] * RACERS
    assert ids_of(tick_jobs(env, "race")) == [tick_job_id("race", tick)]
    assert claims(env, "race") == [f"{stamp(tick)}~0.claim"]
    assert done_marks(env, "race") == [f"{stamp(tick)}.done"]


def test_a_claim_that_answered_eexist_is_ours_only_if_its_token_is(env: SpoolEnv) -> None:
    with_schedules(env, net=schedule(every="1h"))
    ticks = Ticks(spool_of(env))
    tick = last_hour()
    mine = tick_record("net", tick, generation=0, runner="r1", host="h1")
    # The link went through but its reply was lost: the retried link finds
    # the name our first request made, holding our own token.
    path = ticks.claim_path("net", tick, 0)
    path.write_bytes(mine.encode())
    assert ticks.claim(mine) is True
    theirs = tick_record("net", tick, generation=0, runner="r1", host="h1")
    assert theirs.token != mine.token
    assert ticks.claim(theirs) is False
    assert decode_claim(path.read_bytes()).token == mine.token


def test_a_claimer_that_died_before_publishing_is_repaired_by_another_runner(
    env: SpoolEnv,
) -> None:
    tick, timing = recent_daily()
    with_schedules(env, nightly=schedule(**timing, missed="latest", catch_up="2h"))
    ticks = Ticks(spool_of(env))
    # A runner claimed the tick and died before it published the job.
    assert ticks.claim(tick_record("nightly", tick, generation=0, runner="dead", host="gone"))
    job_id = tick_job_id("nightly", tick)
    runner = env.start_runner()
    wait_until(lambda: done_marks(env, "nightly"), 30, "the repair to mark the tick done")
    env.wait_status(job_id, "completed")
    stop_clean(runner)
    assert claims(env, "nightly") == [f"{stamp(tick)}~0.claim", f"{stamp(tick)}~1.claim"]
    assert ids_of(tick_jobs(env, "nightly")) == [job_id]
    assert "tick_repaired" in log_text(env)


def test_a_job_published_and_finished_before_the_claimer_died_is_never_queued_again(
    env: SpoolEnv,
) -> None:
    tick, timing = recent_daily()
    with_schedules(env, nightly=schedule(**timing, missed="latest", catch_up="2h"))
    ticks = Ticks(spool_of(env))
    record = tick_record("nightly", tick, generation=0, runner="dead", host="gone")
    assert ticks.claim(record)
    from jobspool.config import load_config

    spec = load_config(env.config, use_env=False).settings.schedules["nightly"]
    assert ticks.publish(record, spec)
    env.burst()  # the job runs and finishes; its claimer never marked the tick done
    env.wait_status(record.job_id or "", "completed")
    runner = env.start_runner()
    wait_until(lambda: done_marks(env, "nightly"), 30, "the repair to mark the tick done")
    stop_clean(runner)
    assert tick_jobs(env, "nightly") == [f"completed:{record.job_id}"]
    assert env.record("completed", record.job_id or "")["revision"] == 2  # ran once


def test_overlap_skip_records_a_tick_while_the_previous_run_is_unfinished(env: SpoolEnv) -> None:
    with_schedules(
        env,
        slow={
            "job": "Sleeper",
            "method": "sleep",
            "params": [2.5],
            "every": "1s",
            "missed": "skip",
        },
    )
    runner = env.start_runner()

    def skipped() -> list[dict[str, Any]]:
        found = []
        for name in claims(env, "slow"):
            claim = decode_claim((folder(env, "slow") / name).read_bytes())
            if claim.job_id is None:
                found.append({"tick": claim.tick, "reason": claim.reason})
        return found

    wait_until(lambda: folder(env, "slow").exists() and len(skipped()) >= 2, 30, "skipped ticks")
    stop_clean(runner)
    for entry in skipped():
        assert "is still" in str(entry["reason"])
        assert f"{stamp(entry['tick'])}.done" in done_marks(env, "slow")
    # Never two runs of the schedule unfinished at once.
    jobs = ids_of(tick_jobs(env, "slow"))
    assert jobs, "no run was queued"
    starts = sorted(parse_stamp(j.rsplit("-", 1)[1]) or datetime.min for j in jobs)
    assert all(b - a >= timedelta(seconds=2) for a, b in itertools.pairwise(starts))


def test_reload_changed_timing_takes_effect_and_removed_schedule_stops(env: SpoolEnv) -> None:
    with_schedules(env, beat=schedule(every="1s", missed="skip"))
    runner = env.start_runner()
    wait_until(lambda: len(ids_of(tick_jobs(env, "beat"))) >= 2, 30, "ticks every second")
    with_schedules(env, beat=schedule(every="4s", missed="skip"))
    wait_until(lambda: "schedule_changed" in log_text(env), 30, "the reload")
    seen = set(ids_of(tick_jobs(env, "beat")))

    def new_ticks() -> list[datetime]:
        fresh = set(ids_of(tick_jobs(env, "beat"))) - seen
        return [parse_stamp(j.rsplit("-", 1)[1]) or datetime.min for j in fresh]

    wait_until(lambda: len(new_ticks()) >= 2, 30, "ticks of the new timing")
    assert all(int(t.timestamp()) % 4 == 0 for t in new_ticks()), new_ticks()
    with_schedules(env, probe=schedule(every="1s", missed="skip"))
    wait_until(lambda: "schedule_removed" in log_text(env), 30, "the removal")
    before = set(ids_of(tick_jobs(env, "beat")))
    # The probe's own ticks show time passing: three of them span over four seconds.
    wait_until(lambda: len(ids_of(tick_jobs(env, "probe"))) >= 6, 30, "the probe's ticks")
    stop_clean(runner)
    assert set(ids_of(tick_jobs(env, "beat"))) == before


def test_a_settled_tick_whose_job_was_removed_is_never_queued_again(env: SpoolEnv) -> None:
    tick, timing = recent_daily()
    with_schedules(env, nightly=schedule(**timing, missed="latest", catch_up="2h"))
    ticks = Ticks(spool_of(env))
    record = tick_record("nightly", tick, generation=0, runner="r", host="h")
    assert ticks.claim(record)
    ticks.mark_done("nightly", tick, record.job_id, "queued")
    # Its job ran and retention removed it: only the done mark remains.
    runner = env.start_runner()
    probe = env.runjob("Typed", "add", "1").stdout.strip()
    env.wait_status(probe, "completed")
    # Past a lease and several scans of the claims: a repair would have come.
    lease = float(env.settings["lease_seconds"])
    started = datetime.now(UTC)
    wait_until(
        lambda: datetime.now(UTC) - started > timedelta(seconds=lease + 1), 30, "a lease to pass"
    )
    stop_clean(runner)
    assert tick_jobs(env, "nightly") == []
    assert claims(env, "nightly") == [f"{stamp(tick)}~0.claim"]
    assert done_marks(env, "nightly") == [f"{stamp(tick)}.done"]


def test_old_settled_ticks_are_pruned_but_the_newest_and_unsettled_ones_stay(
    env: SpoolEnv,
) -> None:
    ticks = Ticks(spool_of(env))
    hour = timedelta(hours=1)
    first = last_hour() - 6 * hour
    made = [first + i * hour for i in range(4)]
    for i, tick in enumerate(made):
        record = tick_record("p", tick, generation=0, runner="r", host="h")
        assert ticks.claim(record)
        if i != 1:  # tick 1 was claimed and never settled: a repair's business
            ticks.mark_done("p", tick, record.job_id, "queued")
    # Everything is older than the cutoff; the newest settled tick stays for
    # its "last run", the unsettled one for its repair.
    assert ticks.prune("p", last_hour()) == 4
    assert sorted(ticks.listing("p")) == [made[1], made[3]]
    assert claims(env, "p") == [f"{stamp(made[1])}~0.claim", f"{stamp(made[3])}~0.claim"]
    assert done_marks(env, "p") == [f"{stamp(made[3])}.done"]
    # Ticks younger than the cutoff are never touched.
    assert ticks.prune("p", first) == 0


def test_the_loop_wakes_for_each_tick_whatever_its_other_timers(env: SpoolEnv) -> None:
    # Heartbeats every 5 s and rescans every 30 s: only the tick itself can
    # wake the loop in time.
    env.write_config(heartbeat_seconds=5, lease_seconds=20, poll_seconds=30)
    with_schedules(env, beat=schedule(every="1s", missed="skip"))
    runner = env.start_runner()
    wait_until(lambda: len(tick_jobs(env, "beat")) >= 4, 30, "four ticks")
    stop_clean(runner)
    lags = []
    for entry in tick_jobs(env, "beat"):
        status, job_id = entry.split(":", 1)
        if status == "running":
            continue
        created = datetime.fromisoformat(env.record(status, job_id)["created_at"])
        tick = parse_stamp(job_id.rsplit("-", 1)[1])
        assert tick is not None
        lags.append((created - tick).total_seconds())
    assert lags and max(lags) < 0.5, lags
