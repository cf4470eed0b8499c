"""Batch submit: all validated before anything is written, published with one
flush, and on any error nothing stays published but what a runner took."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from typing import Any

import pytest

from jobspool import NotPublished, run_background_jobs
from jobspool.errors import Conflict, InvalidParams, NotAllowed
from jobspool.model import Job
from jobspool.spool import Spool
from tests.conftest import SpoolEnv
from tests.support.faults import CallRecorder, FailNthCall
from tests.support.spoolkit import assert_one_line_error, config


def _adds(n: int) -> list[dict[str, Any]]:
    return [{"job": "Typed", "method": "add", "params": [i, 1]} for i in range(n)]


def _untouched(env: SpoolEnv) -> None:
    assert env.files("pending") == []
    assert os.listdir(env.spool / "tmp") == []


def test_a_batch_is_queued_in_order_and_runs(env: SpoolEnv) -> None:
    ids = run_background_jobs(
        [*_adds(40), {"job": "Typed", "method": "add", "params": {"a": 7}, "priority": 5}],
        config=config(env),
    )
    assert len(ids) == len(set(ids)) == 41
    assert env.files("pending") == sorted(f"{i}.json" for i in ids)
    assert os.listdir(env.spool / "tmp") == []
    assert env.record("pending", ids[40])["priority"] == 5
    assert env.burst().returncode == 0
    assert [env.record("completed", i)["result"] for i in ids] == [*range(1, 41), 7]


@pytest.mark.parametrize(
    ("bad", "error", "text"),
    [
        ({"job": "Typed", "method": "add", "params": ["x"]}, InvalidParams, "jobs[3]: "),
        ({"job": "Typd", "method": "add"}, NotAllowed, "jobs[3]: job 'Typd' is not in"),
        ({"job": "Typed", "method": "add", "colour": 1}, InvalidParams, "jobs[3]: unknown key"),
        ({"method": "add"}, InvalidParams, "jobs[3].job: required"),
        (
            {"job": "Typed", "method": "add", "params": [1], "timeout": 1e9},
            InvalidParams,
            "jobs[3]: timeout",
        ),
    ],
)
def test_one_bad_job_refuses_the_batch_and_writes_nothing(
    env: SpoolEnv, bad: dict[str, Any], error: type[Exception], text: str
) -> None:
    items = _adds(6)
    items[3] = bad
    with pytest.raises(error) as caught:
        run_background_jobs(items, config=config(env))
    assert str(caught.value).startswith(text), caught.value
    _untouched(env)


def test_an_id_used_twice_or_already_taken_refuses_the_batch(env: SpoolEnv) -> None:
    twice = [{**item, "job_id": "same"} for item in _adds(2)]
    with pytest.raises(Conflict, match="names the same job id twice"):
        run_background_jobs(twice, config=config(env))
    _untouched(env)
    run_background_jobs([{**_adds(1)[0], "job_id": "taken"}], config=config(env))
    with pytest.raises(Conflict, match="a job with id taken already exists"):
        run_background_jobs([*_adds(2), {**_adds(1)[0], "job_id": "taken"}], config=config(env))
    assert env.files("pending") == ["taken.json"]


def test_one_flush_for_the_whole_batch(env: SpoolEnv) -> None:
    ops = CallRecorder()
    Spool(env.spool, ops=ops).submit_many(
        [Job(job="Typed", method="add", params=[i]) for i in range(50)]
    )
    names = [op for op, _ in ops.calls]
    assert names.count("fsync") == 0  # no file flushed on its own...
    assert names.count("sync_files") == 1  # ...one flush for all of them
    assert names.count("fsync_dir") == 1  # and one for pending/
    first_link = names.index("link")
    assert names.index("sync_files") < first_link  # contents durable before any name
    assert names.index("fsync_dir") > len(names) - 1 - names[::-1].index("link")


def test_an_error_at_any_step_leaves_nothing_published(env: SpoolEnv) -> None:
    """Fail the 1st call of a batch, then the 2nd, ... until a batch meets no
    failure: each failed batch left no job behind."""
    for nth in range(1, 100):
        root = env.root / f"spool-{nth}"
        Spool(root)  # the layout, made before the faulty ops count
        ops = FailNthCall(nth, errno.EIO)
        jobs = [Job(job="Typed", method="add", params=[i]) for i in range(3)]
        try:
            ids = Spool(root, ops=ops, create=False).submit_many(jobs)
        except NotPublished as exc:
            assert exc.published == [], (nth, ops.failed)
            assert os.listdir(root / "pending") == [], (nth, ops.failed)
            continue
        assert sorted(os.listdir(root / "pending")) == sorted(f"{i}.json" for i in ids)
        if ops.failed is None:
            break  # every call of the batch has been failed once
        # A call whose failure costs nothing: a tmp name's removal.
        assert ops.failed[0] == "unlink_quiet", (nth, ops.failed)
    else:
        pytest.fail("the batch never ran without a failure")
    assert nth > 10  # writes, the flush, the links, the directory's fsync


def test_eager_mode_runs_the_batch_in_order(env: SpoolEnv) -> None:
    env.write_config(eager=True)
    ids = run_background_jobs(_adds(3), config=config(env))
    assert len(ids) == 3
    _untouched(env)


# ---------------------------------------------------------------- runjob --batch


def test_runjob_batch_from_a_file_and_from_stdin(env: SpoolEnv) -> None:
    lines = ['{"job": "Typed", "method": "add", "params": [1, 2]}', "", "# a comment"]
    lines.append('{"job": "Typed", "method": "greet", "params": {"name": "x"}, "priority": 2}')
    batch = env.root / "jobs.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    out = env.runjob("--batch", str(batch), "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    ids = out.stdout.split()
    assert len(ids) == 2 and env.files("pending") == sorted(f"{i}.json" for i in ids)

    piped = subprocess.run(
        [sys.executable, "-m", "jobspool.runjob", "--batch", "-", "--config", str(env.config)],
        input=lines[0] + "\n",
        capture_output=True,
        text=True,
        env=env.environ(),
        cwd=env.root,
        check=False,
        timeout=60,
    )
    assert piped.returncode == 0, piped.stderr
    assert len(env.files("pending")) == 3


def test_runjob_batch_names_the_bad_line_and_writes_nothing(env: SpoolEnv) -> None:
    batch = env.root / "jobs.jsonl"
    good = '{"job": "Typed", "method": "add", "params": [1, 2]}'
    batch.write_text(f"{good}\n\n{good}\n" + '{"job": "Typed", "method": "add", "params": ["x"]}\n')
    out = env.runjob("--batch", str(batch), "--config", str(env.config))
    assert_one_line_error(out, "runjob", f"{batch}:4: ")
    batch.write_text(f"{good}\nnot json\n")
    out = env.runjob("--batch", str(batch), "--config", str(env.config))
    assert_one_line_error(out, "runjob", f"{batch}:2: not JSON")
    out = env.runjob("--batch", str(batch), "Typed", "--config", str(env.config))
    assert_one_line_error(out, "runjob", "--batch takes each job's settings from its line, not JOB")
    _untouched(env)
    batch.write_text(f"{good}\n{good}\n")
    checked = env.runjob("--batch", str(batch), "--check", "--config", str(env.config))
    assert checked.returncode == 0 and checked.stdout == "ok: 2 jobs\n", checked.stderr
    _untouched(env)
