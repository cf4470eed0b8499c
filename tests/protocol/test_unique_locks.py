"""Unique jobs without a runner: templates, submits, stale and garbage locks,
and races between real submitter processes."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobspool import unique
from jobspool.config import load_config
from jobspool.errors import ConfigError, InvalidParams
from jobspool.fsops import FileOps
from jobspool.model import Job, Unique, utcnow
from jobspool.names import new_id
from jobspool.spool import Spool
from jobspool.submit import open_spool, run_background_job
from jobspool.uniquekey import check_template, render
from tests.conftest import REPO, TEST_JOBS, SpoolEnv, wait_until
from tests.support.faults import CallRecorder, FailNthCall, PauseAt
from tests.support.spoolkit import config, job_files_everywhere

MARK = ["/nonexistent/marker"]


def all_jobs(env: SpoolEnv) -> list[str]:
    return [n for names in job_files_everywhere(env).values() for n in names]


def locks(env: SpoolEnv) -> list[str]:
    d = env.spool / unique.DIR
    return sorted(os.listdir(d)) if d.exists() else []


def lock_of(env: SpoolEnv, key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((env.spool / unique.DIR / unique.lock_name(key)).read_text())
    return data


def submit(
    env: SpoolEnv,
    key: str = "k-{0}",
    params: list[Any] | None = None,
    more: dict[str, Any] | None = None,
) -> str:
    return run_background_job(
        "Marker", "touch", params or MARK, config=config(env), unique={"key": key, **(more or {})}
    )


@pytest.mark.parametrize(
    "template",
    ["customer-{customer}", "{0}", "{0}-{1}-{name}", "plain", "{{literal}}-{a_b9}"],
)
def test_plain_field_templates_are_accepted(template: str) -> None:
    assert check_template(template) == template


@pytest.mark.parametrize(
    "template",
    [
        "{0.__class__}",
        "{customer.__init__.__globals__}",
        "{0[0]}",
        "{params[secret]}",
        "{0!r}",
        "{0:>1000000}",
        "{0:{1}}",
        "{}",
        "{ x}",
        "{-1}",
        "unbalanced {",
        "}",
        "",
        "x" * 201,
    ],
)
def test_templates_that_reach_beyond_plain_fields_are_refused(template: str) -> None:
    with pytest.raises(ValueError) as err:
        check_template(template)
    assert "\n" not in str(err.value)


def test_render_fills_by_index_and_by_name_and_refuses_what_is_missing() -> None:
    assert render("c-{0}-{1}", ["a", 7], {}) == "c-a-7"
    assert render("c-{customer}", [], {"customer": {"b": 1, "a": [1]}}) == 'c-{"a":[1],"b":1}'
    with pytest.raises(ValueError, match="no param named 'nope'"):
        render("{nope}", [], {"customer": 1})
    with pytest.raises(ValueError, match="1 positional params"):
        render("{1}", ["a"], {})
    with pytest.raises(ValueError, match="filled key"):
        render("{0}", ["x" * 300], {})


def test_a_bad_template_in_the_allow_list_is_one_line_naming_its_key_path(
    env: SpoolEnv,
) -> None:
    jobs = {**TEST_JOBS, "Marker": {**TEST_JOBS["Marker"], "unique": {"key": "{0.__class__}"}}}
    env.write_config(allowed_jobs=jobs)
    with pytest.raises(ConfigError) as err:
        load_config(env.config)
    line = str(err.value)
    assert "allowed_jobs.Marker.unique.key" in line and "\n" not in line
    jobs["Marker"]["unique"] = {"key": "m-{0}", "until": "never"}
    env.write_config(allowed_jobs=jobs)
    with pytest.raises(ConfigError, match=r"allowed_jobs\.Marker\.unique\.until"):
        load_config(env.config)
    jobs["Marker"]["unique"] = {"key": "m-{0}", "for": "forever"}
    env.write_config(allowed_jobs=jobs)
    with pytest.raises(ConfigError, match=r"allowed_jobs\.Marker\.unique\.for"):
        load_config(env.config)


def test_a_bad_key_at_submit_is_refused_naming_its_path_and_writes_nothing(
    env: SpoolEnv,
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"key": "{0.__class__}"}, "unique.key"),
        ({"key": "{path.__globals__}"}, "unique.key"),
        ({"key": "{missing}"}, "unique.key"),
        ({"key": "k", "until": "later"}, "unique.until"),
        ({"key": "k", "for": "-5m"}, "unique.for"),
        ({"key": "k", "colour": 1}, "unique.colour"),
    ]
    for spec, where in cases:
        with pytest.raises(InvalidParams) as err:
            run_background_job("Marker", "touch", MARK, config=config(env), unique=spec)
        assert str(err.value).startswith(where), err.value
    assert all_jobs(env) == [] and locks(env) == []


def test_a_second_submit_returns_the_holder_and_writes_nothing(env: SpoolEnv) -> None:
    first = submit(env)
    assert not unique.is_existing(first)
    before = sorted(p.name for p in (env.spool / "pending").iterdir())
    lock_before = (env.spool / unique.DIR / unique.lock_name("k-" + MARK[0])).read_bytes()
    second = submit(env)
    assert second == first and isinstance(second, str)
    assert unique.is_existing(second)
    assert sorted(p.name for p in (env.spool / "pending").iterdir()) == before
    assert (env.spool / unique.DIR / unique.lock_name("k-" + MARK[0])).read_bytes() == lock_before
    other = submit(env, params=["/nonexistent/other"])
    assert other != first and not unique.is_existing(other)
    lock = lock_of(env, "k-" + MARK[0])
    assert lock["job"] == first and lock["until"] == "finished" and lock["for_seconds"] == 3600


def test_positional_params_fill_named_fields_through_the_signature(env: SpoolEnv) -> None:
    first = submit(env, key="path-{path}")
    assert lock_of(env, "path-" + MARK[0])["job"] == first
    assert submit(env, key="path-{path}") == first
    by_name = run_background_job(
        "Marker", "touch", {"path": MARK[0]}, config=config(env), unique={"key": "path-{path}"}
    )
    assert by_name == first


def test_the_allow_list_entry_makes_a_job_unique(env: SpoolEnv) -> None:
    jobs = {**TEST_JOBS, "Marker": {**TEST_JOBS["Marker"], "unique": {"key": "m-{0}"}}}
    env.write_config(allowed_jobs=jobs)
    first = run_background_job("Marker", "touch", MARK, config=config(env))
    second = run_background_job("Marker", "touch", MARK, config=config(env))
    assert second == first and unique.is_existing(second)
    assert env.record("pending", first)["unique"] == {
        "key": "m-" + MARK[0],
        "until": "finished",
        "for_seconds": 3600,
    }


def test_a_lock_past_its_window_is_taken_over(env: SpoolEnv) -> None:
    first = submit(env, more={"for": "1s"})
    wait_until(lambda: utcnow() > unique.expiry(unique.Lock(**lock_of(env, "k-" + MARK[0]))))
    second = submit(env)
    assert second != first and not unique.is_existing(second)
    assert lock_of(env, "k-" + MARK[0])["job"] == second
    assert env.status_of(first) == env.status_of(second) == "pending"


def test_a_lock_whose_job_was_deleted_by_hand_is_not_stuck(env: SpoolEnv) -> None:
    # A grace far above any stall of a loaded machine between two submits.
    env.write_config(unique_grace_seconds=2)
    first = submit(env)
    (env.spool / "pending" / f"{first}.json").unlink()
    # Within the grace its job may still be on its way: the key holds.
    assert submit(env) == first
    # Once the grace has passed, a submit takes the key over.
    answers = [first]

    def taken_over() -> bool:
        answers.append(submit(env))
        return answers[-1] != first

    wait_until(taken_over, 10, "a submit after the grace to take the key over")
    second = answers[-1]
    assert second != first and env.status_of(second) == "pending"
    assert lock_of(env, "k-" + MARK[0])["job"] == second


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b'{"key": "k-/nonexistent/marker"}',
        b"[" * 5000,
        b'{"key": "other", "job": "x", "until": "finished", "for_seconds": 60,'
        b' "created": "2020-01-01T00:00:00+00:00", "expires": "2999-01-01T00:00:00+00:00"}',
    ],
)
def test_a_garbage_lock_is_judged_quarantined_and_never_blocks(
    env: SpoolEnv, content: bytes
) -> None:
    (env.spool / unique.DIR).mkdir(exist_ok=True)
    (env.spool / unique.DIR / unique.lock_name("k-" + MARK[0])).write_bytes(content)
    job = submit(env)
    assert not unique.is_existing(job) and env.status_of(job) == "pending"
    assert lock_of(env, "k-" + MARK[0])["job"] == job
    reasons = [p.read_text() for p in (env.spool / "corrupt").glob("*.reason.txt")]
    assert len(reasons) == 1 and "unique/" in reasons[0]


def test_a_forged_lock_far_in_the_future_does_not_hold_the_key(env: SpoolEnv) -> None:
    first = submit(env)
    forged = lock_of(env, "k-" + MARK[0])
    ahead = utcnow() + timedelta(days=3650)
    forged.update(created=ahead.isoformat(), expires=(ahead + timedelta(hours=1)).isoformat())
    path = env.spool / unique.DIR / unique.lock_name("k-" + MARK[0])
    path.unlink()
    path.write_text(json.dumps(forged))
    second = submit(env)
    assert second != first and lock_of(env, "k-" + MARK[0])["job"] == second


def test_a_symlink_in_place_of_a_lock_is_never_followed(env: SpoolEnv, tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_text("keep me")
    (env.spool / unique.DIR).mkdir(exist_ok=True)
    (env.spool / unique.DIR / unique.lock_name("k-" + MARK[0])).symlink_to(target)
    job = submit(env)
    assert not unique.is_existing(job)
    assert target.read_text() == "keep me"
    assert lock_of(env, "k-" + MARK[0])["job"] == job


def test_releasing_removes_only_a_lock_naming_the_job(env: SpoolEnv) -> None:
    from jobspool.states import Status

    first = submit(env)
    spool = open_spool(config(env))
    record = spool.get(first).record
    stranger = record.model_copy(update={"id": "someone-else"})
    assert not unique.release(spool, stranger, Status.COMPLETED)
    assert not unique.release(spool, record, Status.PENDING)  # until=finished: a retry keeps it
    assert unique.holder(spool, record)
    assert unique.release(spool, record, Status.COMPLETED)
    assert locks(env) == [] and not unique.holder(spool, record)


def test_a_take_over_never_removes_the_lock_a_faster_racer_made(env: SpoolEnv) -> None:
    """B judges the stale lock, then A takes it over and publishes before
    B's rename: B moves A's fresh lock aside, sees it is not what it judged,
    puts it back, and returns A's job."""
    env.write_config(unique_grace_seconds=0)
    key = "k-" + MARK[0]
    stale = submit(env)
    (env.spool / "pending" / f"{stale}.json").unlink()  # its job is gone: stale
    held = PauseAt("rename", unique.DIR)
    slow = Spool(env.spool, ops=held, create=False)
    record = Job(job="Marker", method="touch", params=MARK, id="racer-b", unique=Unique(key=key))
    out: list[str] = []
    racer = threading.Thread(
        target=lambda: out.append(unique.submit(slow, record, slow.submit, grace=0))
    )
    racer.start()
    try:
        assert held.reached.wait(20)
        winner = submit(env)
        assert not unique.is_existing(winner)
    finally:
        held.go.set()
        racer.join(30)
    assert out == [winner] and unique.is_existing(out[0])
    assert all_jobs(env) == [f"{winner}.json"]
    assert lock_of(env, key)["job"] == winner


def _unique_submit(spool: Spool) -> str:
    record = Job(job="Marker", method="touch", params=MARK, id=new_id(), unique=Unique(key="k"))
    return unique.submit(spool, record, spool.submit)


def _visible(root: Path) -> list[str]:
    return [
        f"{d}/{n}"
        for d in ("pending", unique.DIR)
        if (root / d).exists()
        for n in os.listdir(root / d)
    ]


def test_a_unique_submit_failing_at_any_step_leaves_neither_job_nor_lock(
    tmp_path: Path,
) -> None:
    recorder = CallRecorder()
    probe = Spool(tmp_path / "probe")
    probe.ops = recorder
    _unique_submit(probe)
    ops = [op for op, _paths in recorder.calls]
    # The lock is linked and made durable before the job is linked.
    links = [i for i, (op, _p) in enumerate(recorder.calls) if op == "link"]
    assert [recorder.calls[i][1][-1].split("/")[-2] for i in links] == [unique.DIR, "pending"]
    assert ops.index("fsync_dir") < links[1], ops
    problems = []
    for code in (errno.EIO, errno.ENOSPC):
        for nth in range(1, len(ops) + 1):
            root = tmp_path / f"{errno.errorcode[code]}-{nth:02d}"
            spool = Spool(root)
            spool.ops = FailNthCall(nth, code)
            where = f"call {nth} ({ops[nth - 1]}) {errno.errorcode[code]}"
            try:
                job_id = _unique_submit(spool)
            except OSError:
                if _visible(root):
                    problems.append(f"{where}: raised but left {_visible(root)}")
                spool.ops = FileOps()
                if unique.is_existing(_unique_submit(spool)):
                    problems.append(f"{where}: the key is still held after a failed submit")
                continue
            # Only the drop of a spare tmp name may fail without failing the submit.
            if ops[nth - 1] != "unlink_quiet":
                problems.append(f"{where}: returned {job_id} although a call failed")
            elif sorted(_visible(root)) != [
                f"pending/{job_id}.json",
                f"{unique.DIR}/{unique.lock_name('k')}",
            ]:
                problems.append(f"{where}: returned but left {_visible(root)}")
    assert problems == [], "\n".join([f"sequence: {ops}", *problems])


# ------------------------------------------------------------------ processes

KILLED_SUBMITTER = """
import os, signal, sys
from jobspool.model import Job, Unique
from jobspool.submit import open_spool, resolve_config
from jobspool import unique
from tests.support.faults import KillAt

cfg = resolve_config(sys.argv[1])
spool = open_spool(cfg)
spool.ops = KillAt("link", "pending")
record = Job(job="Marker", method="touch", params=["/nonexistent/marker"], id="doomed",
             unique=Unique(key="k-/nonexistent/marker"))
unique.submit(spool, record, lambda r: spool.submit(r))
"""

SUBMITTER = """
import sys, time
from jobspool.submit import run_background_job
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
job = run_background_job("Marker", "touch", ["/nonexistent/marker"], config=sys.argv[1],
                         unique={"key": "k-{0}"})
print(job, getattr(job, "existing"))
"""


def run_python(env: SpoolEnv, code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, str(env.config), *args],
        env=env.environ(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def racers(env: SpoolEnv, n: int) -> list[tuple[str, str]]:
    start = str(time.time() + 1.5)
    procs = [run_python(env, SUBMITTER, start) for _ in range(n)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        job, existing = out.split()
        outs.append((job, existing))
    return outs


def test_many_processes_submitting_one_key_at_once_make_exactly_one_job(env: SpoolEnv) -> None:
    outs = racers(env, 8)
    jobs = all_jobs(env)
    assert len(jobs) == 1
    winner = jobs[0].removesuffix(".json")
    assert {job for job, _ in outs} == {winner}
    assert sorted(existing for _, existing in outs) == ["False"] + ["True"] * 7
    assert lock_of(env, "k-" + MARK[0])["job"] == winner


def test_a_submitter_killed_between_lock_and_publish_is_taken_over(env: SpoolEnv) -> None:
    env.write_config(unique_grace_seconds=3)
    proc = run_python(env, KILLED_SUBMITTER)
    proc.communicate(timeout=60)
    assert proc.returncode == -9
    assert lock_of(env, "k-" + MARK[0])["job"] == "doomed" and all_jobs(env) == []
    # Inside the grace the job could still be on its way: held.
    assert submit(env) == "doomed"
    lock = unique.Lock(**lock_of(env, "k-" + MARK[0]))
    wait_until(lambda: utcnow() > lock.created + timedelta(seconds=3), what="the grace")
    # Two submitters race the take-over: exactly one new job.
    outs = racers(env, 4)
    jobs = all_jobs(env)
    assert len(jobs) == 1
    winner = jobs[0].removesuffix(".json")
    assert winner != "doomed" and {job for job, _ in outs} == {winner}
    assert sorted(existing for _, existing in outs) == ["False", "True", "True", "True"]
    assert lock_of(env, "k-" + MARK[0])["job"] == winner
