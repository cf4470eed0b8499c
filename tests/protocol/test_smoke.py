"""Each way in reaches completed/ with its result."""

from __future__ import annotations

import json

from jobspool import run_background_job
from tests.conftest import SpoolEnv


def test_file_drop_cli_and_helper_complete(env: SpoolEnv) -> None:
    env.drop(
        "dropped.json",
        json.dumps({"job": "SampleJob", "method": "process", "params": ["p1", "p2"]}),
    )
    out = env.runjob("SampleJob", "process", "a,b,c", "--config", str(env.config))
    assert out.returncode == 0, out.stderr
    cli_id = out.stdout.strip()
    helper_id = run_background_job(
        "SampleJob", "process", {"data": "example"}, config=str(env.config)
    )
    result = env.burst()
    assert result.returncode == 0, result.stderr
    assert env.record("completed", "dropped")["result"]["processed"] == ["p1", "p2"]
    assert env.record("completed", cli_id)["result"]["processed"] == ["a", "b", "c"]
    assert env.record("completed", helper_id)["result"]["named"] == {"data": "example"}


def test_spawn_start_method_runs_each_attempt_in_a_fresh_interpreter(env: SpoolEnv) -> None:
    """The path Windows takes (no fork): one new interpreter per attempt."""
    env.write_config(start_method="spawn")
    ok = run_background_job("Typed", "add", ["2", 3], config=str(env.config))
    bad = run_background_job("Failing", "bad", ["no"], config=str(env.config))
    result = env.burst()
    assert result.returncode == 0, result.stderr
    assert env.record("completed", ok)["result"] == 5
    failed = env.record("failed", bad)
    assert [a["outcome"] for a in failed["attempts"]] == ["failed"]
    assert failed["error"]["type"] == "BadInput"
    assert failed["attempts"][0]["exit_code"] == 1
