"""`jobspool schedules`, `jobspool schedules run NAME`, and schedule mistakes
in allowed_jobs.yaml (one line each: file, key path, fix)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.conftest import SpoolEnv
from tests.support.schedtimes import far_daily
from tests.support.spoolkit import assert_one_line_error

NIGHTLY: dict[str, Any] = {
    "job": "Typed",
    "method": "add",
    "params": {"a": 1, "b": 2},
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "missed": "latest",
    "catch_up": "1h",
}


def test_list_shows_last_and_next_run_and_run_now_queues_a_job(env: SpoolEnv) -> None:
    _, cron = far_daily()
    env.write_config(schedules={"nightly-report": {**NIGHTLY, "cron": cron}})
    listed = env.cli("schedules")
    assert listed.returncode == 0, listed.stderr
    assert f'nightly-report  Typed.add  cron "{cron}" Europe/Berlin' in listed.stdout
    assert "last: never" in listed.stdout
    assert re.search(r"CES?T", listed.stdout) and "UTC)" in listed.stdout  # local and UTC
    ran = env.cli("schedules", "run", "nightly-report")
    assert ran.returncode == 0, ran.stderr
    job_id = ran.stdout.strip()
    assert job_id.startswith("run-nightly-report-")
    record = env.record("pending", job_id)
    assert (record["job"], record["method"], record["params"]) == ("Typed", "add", {"a": 1, "b": 2})
    env.burst()
    env.wait_status(job_id, "completed")
    data = json.loads(env.cli("schedules", "--json").stdout)
    assert [d["name"] for d in data] == ["nightly-report"]
    assert data[0]["next_run_local"].endswith(("+01:00", "+02:00"))
    assert data[0]["next_run_utc"].endswith("+00:00")
    assert data[0]["last_run_utc"] is None


def test_run_now_of_an_unknown_schedule_says_did_you_mean(env: SpoolEnv) -> None:
    env.write_config(schedules={"nightly-report": NIGHTLY})
    out = env.cli("schedules", "run", "nightly-reprot")
    assert_one_line_error(out, "jobspool", "did you mean nightly-report?")
    assert env.files("pending") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"job": "Typd"},
            "schedules.nightly-report.job: 'Typd' is not in the allow-list; did you mean Typed?",
        ),
        ({"method": "ad"}, "schedules.nightly-report.method: 'ad' is not allowed for Typed"),
        (
            {"cron": "30 25 * * *"},
            "schedules.nightly-report.cron: '30 25 * * *' is not a valid cron",
        ),
        (
            {"timezone": "Europe/Berln"},
            "schedules.nightly-report.timezone: 'Europe/Berln' is not a time zone",
        ),
        ({"every": "5m"}, "schedules.nightly-report: give exactly one of cron"),
        ({"missed": "some"}, "schedules.nightly-report.missed:"),
        ({"catch_up": "soon"}, "schedules.nightly-report.catch_up: 'soon' is not a duration"),
        (
            {"overlpa": "skip"},
            "schedules.nightly-report.overlpa: unknown key; did you mean overlap?",
        ),
    ],
)
def test_schedule_mistakes_are_one_line_with_key_path(
    env: SpoolEnv, change: dict[str, Any], expected: str
) -> None:
    env.write_config(schedules={"nightly-report": {**NIGHTLY, **change}})
    out = env.cli("schedules")
    assert_one_line_error(out, "jobspool", f"{env.config}: {expected}")


def test_check_binds_schedule_params_to_the_method(env: SpoolEnv) -> None:
    env.write_config(schedules={"nightly-report": {**NIGHTLY, "params": {"a": 1, "c": 3}}})
    out = env.cli("check")
    assert out.returncode != 0
    assert "schedules.nightly-report.params:" in out.stdout + out.stderr
    assert "Typed.add(a: int, b: int = 0)" in out.stdout + out.stderr
    env.write_config(schedules={"nightly-report": NIGHTLY})
    assert env.cli("check").returncode == 0
