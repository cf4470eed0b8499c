"""jobspool pause/resume/status and the Python API for pauses and limits."""

from __future__ import annotations

import json

import pytest

from jobspool import pause_jobs, paused, resume_jobs
from jobspool.errors import NotAllowed
from tests.conftest import TEST_JOBS, SpoolEnv
from tests.support.spoolkit import assert_one_line_error, config


def test_python_api_pauses_resumes_and_reports_who(env: SpoolEnv) -> None:
    cfg = config(env)
    pause_jobs(["Marker"], config=cfg, by="alice")
    pause_jobs(config=cfg, by="bob")
    now = paused(config=cfg)
    assert now.spool_paused and now.names == ["Marker"]
    assert now.by_name["Marker"].by == "alice" and now.by_name["Marker"].via == "python"
    pause_jobs(["Marker"], config=cfg, by="carol")  # the first pause stands
    assert paused(config=cfg).by_name["Marker"].by == "alice"
    resume_jobs(config=cfg)
    assert not paused(config=cfg).spool_paused and paused(config=cfg).names == ["Marker"]
    resume_jobs(["Marker"], config=cfg)
    assert paused(config=cfg).names == []
    with pytest.raises(NotAllowed, match="did you mean Marker"):
        pause_jobs(["marker"], config=cfg)


def test_resume_of_the_spool_says_which_names_stay_paused(env: SpoolEnv) -> None:
    env.cli("pause", "Marker", "Typed", check=True)
    env.cli("pause", check=True)
    out = env.cli("resume", check=True)
    assert out.stdout.splitlines() == [
        "resumed: the whole spool",
        "still paused by name: Marker, Typed",
    ]


def test_status_shows_slots_and_rates_per_limited_name(env: SpoolEnv) -> None:
    limited = {**TEST_JOBS["Marker"], "concurrency": {"per_runner": 1, "global": 3}, "rate": "5/m"}
    env.write_config(allowed_jobs={**TEST_JOBS, "Marker": limited})
    text = env.cli("status", check=True).stdout
    assert "limit: Marker  slots 0/3  rate 0 of 5/m this window" in text
    assert "paused: 0 job names" in text
    body = json.loads(env.cli("status", "--json", check=True).stdout)
    assert body["limits"] == {
        "Marker": {"slots_in_use": 0, "global": 3, "rate": "5/m", "rate_used": 0}
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"global": 0}, "allowed_jobs.Marker.concurrency.global: Input should be greater"),
        ({"globl": 2}, "allowed_jobs.Marker.concurrency.globl: unknown key"),
        ("10/d", "allowed_jobs.Marker.rate: expected a rate such as 100/m"),
    ],
)
def test_bad_limits_are_one_line_naming_the_key(env: SpoolEnv, value: object, problem: str) -> None:
    key = "rate" if isinstance(value, str) else "concurrency"
    env.write_config(allowed_jobs={**TEST_JOBS, "Marker": {**TEST_JOBS["Marker"], key: value}})
    out = env.cli("check")
    assert_one_line_error(out, "jobspool", problem)
