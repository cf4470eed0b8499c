"""How an attempt's outcome reaches the runner.

From the fork server, a report that fits in one atomic pipe write travels as
a line on the runner's pipe; a bigger one (a large result, a long error) is
written to a file in tmp/ and read after the process exits. Both must give
the same record, leave nothing behind in tmp/, and log every transition.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobspool.child import PIPE_ATOMIC, dumps, send_report
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv
from tests.support.spoolkit import config


def _submit(env: SpoolEnv, job: str, method: str, params: dict[str, object]) -> str:
    return run_background_job(job, method, params, config=config(env))


def _run_alone(
    env: SpoolEnv, job: str, method: str, params: dict[str, object], status: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one job in a burst; its record and its only attempt. No report
    file may be left behind in tmp/, whichever way the report travelled."""
    job_id = _submit(env, job, method, params)
    env.burst()
    record = env.record(status, job_id)
    [attempt] = record["attempts"]
    assert isinstance(attempt["pid"], int) and attempt["pid"] > 0
    assert attempt["finished_at"] >= attempt["started_at"]
    assert not [p for p in (env.spool / "tmp").iterdir() if p.name.endswith(".report.json")]
    return record, attempt


@pytest.mark.parametrize("size", [10, PIPE_ATOMIC * 4])
def test_result_of_any_size_is_recorded_whole(env: SpoolEnv, size: int) -> None:
    name = "n" * size
    record, attempt = _run_alone(env, "Typed", "greet", {"name": name}, "completed")
    assert record["result"] == name
    assert (attempt["outcome"], attempt["exit_code"]) == ("succeeded", 0)


@pytest.mark.parametrize("size", [10, PIPE_ATOMIC * 2])
def test_failure_of_any_size_is_recorded_with_its_error(env: SpoolEnv, size: int) -> None:
    message = "m" * size
    _, attempt = _run_alone(env, "Failing", "bad", {"message": message}, "failed")
    assert (attempt["outcome"], attempt["exit_code"]) == ("failed", 1)
    assert attempt["error"]["message"] == message
    assert "Traceback" in attempt["error"]["traceback"]


def test_every_attempt_logs_started_then_its_end(env: SpoolEnv) -> None:
    small = _submit(env, "Typed", "add", {"a": 1, "b": 2})
    large = _submit(env, "Typed", "greet", {"name": "x" * PIPE_ATOMIC * 2})

    env.burst()

    log = (env.spool / "logs" / "background_jobs.log").read_text().splitlines()
    for job_id in (small, large):
        events = [line.split()[2] for line in log if f"job={job_id}" in line]
        assert events == ["submitted", "started", "completed"], events
    assert env.record("completed", small)["result"] == 3


def test_report_line_is_one_atomic_write() -> None:
    """The pipe path is only taken for lines the kernel writes whole."""
    r, w = os.pipe()
    try:
        assert send_report(w, "tok", {"outcome": "succeeded", "result": 1})
        line = os.read(r, 1 << 16)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        msg = json.loads(line)
        assert msg["report"] == "tok" and msg["result"] == 1 and msg["pid"] == os.getpid()
        assert not send_report(w, "tok", {"outcome": "succeeded", "result": "x" * PIPE_ATOMIC})
        os.set_blocking(r, False)
        with pytest.raises(BlockingIOError):
            os.read(r, 1)  # nothing was written for the line that did not fit
    finally:
        os.close(r)
        os.close(w)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(value=_JSON)
@settings(max_examples=300, deadline=None)
def test_reports_are_encoded_as_the_json_package_would(value: Any) -> None:
    """The attempt's encoder (the C accelerator without the json package)
    writes what json.dumps writes, and refuses what it refuses."""
    assert dumps(value) == json.dumps(value, separators=(",", ":"))
    try:
        expected = json.dumps(value, allow_nan=False)
    except ValueError:
        with pytest.raises(ValueError):
            dumps(value, allow_nan=False)
    else:
        assert json.loads(dumps(value, allow_nan=False)) == json.loads(expected)


def test_values_that_are_not_json_go_to_default() -> None:
    assert dumps({"when": object}, default=lambda v: "<class>") == '{"when":"<class>"}'
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({1: {2, 3}})
    keys = {1: 2, 2.5: None, None: "n"}
    assert dumps(keys) == json.dumps(keys, separators=(",", ":"))
