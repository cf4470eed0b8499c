"""Hostile input at the engine's edges: log lines, the demo export job, submits.

Each test plays an attack through real files and real runner processes (or
the real submit paths) and checks what lands on disk.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from jobspool.errors import InvalidParams
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv
from tests.support.spoolkit import config, drop_aged, job_doc

STAMP = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?:DEBUG|INFO|WARNING|ERROR) [a-z_]+( |$)"

# Everything that ends a line for some reader (str.splitlines, a terminal, a
# log viewer), redraws a terminal, or reorders what it shows.
LINE_BREAKERS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
TERMINAL = "\x1b]0;owned\x07\x1b[2K\x9b31m\x7f\u202e"
HOSTILE = f"a{LINE_BREAKERS}{TERMINAL}\tz"
FORGED = "\n2030-01-01T00:00:00.000Z INFO completed job=forged"


def _lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\n")


def _assert_clean_log(raw: bytes) -> None:
    """Every line is a record or an indented continuation; nothing breaks a line."""
    text = raw.decode("utf-8")
    assert text.splitlines() == text.rstrip("\n").split("\n"), "a line breaker went in raw"
    for char in (*LINE_BREAKERS, "\x1b", "\x07", "\x9b", "\x7f", "\u202e", "\t"):
        assert char not in text, f"{char!r} reached the log unescaped"
    for line in raw.rstrip(b"\n").split(b"\n"):
        assert re.match(STAMP, line) or line.startswith(b"  "), line


def test_log_lines_escape_control_and_line_separator_characters(env: SpoolEnv) -> None:
    """F12: names and file names carrying CR, ESC/OSC, C1, U+2028... stay on one line."""
    drop_aged(env, f"bad{HOSTILE}.json", "{not json")
    rejected = "20300101-000000-000000-0000dead"
    env.drop(f"{rejected}.json", job_doc(f"Evil{HOSTILE}", "process", []))
    failing = "20300101-000000-000000-0000beef"
    env.drop(f"{failing}.json", job_doc("Failing", "bad", [f"boom{HOSTILE}{FORGED}"]))
    result = env.burst()
    assert result.returncode == 0, result.stderr
    assert env.status_of(rejected) == "failed"
    assert env.status_of(failing) == "failed"

    main = (env.spool / "logs" / "background_jobs.log").read_bytes()
    errors = (env.spool / "logs" / "background_jobs_errors.log").read_bytes()
    for raw in (main, errors):
        _assert_clean_log(raw)
        assert b"\n2030-01-01T00:00:00.000Z" not in raw, "a job forged a log record"
    escaped = r"a\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x1b]0;owned\x07\x1b[2K\x9b31m\x7f\u202e\tz"
    # Greppable: one line per record, the hostile text written out as escapes.
    corrupt = [ln for ln in _lines(main) if b" corrupt file=" in ln]
    assert len(corrupt) == 1 and escaped.encode() in corrupt[0], corrupt
    names = [ln for ln in _lines(main) if f"rejected job={rejected} ".encode() in ln]
    assert len(names) == 1 and f'name="Evil{escaped}.process"'.encode() in names[0], names
    failed = [ln for ln in _lines(errors) if f"failed job={failing} ".encode() in ln]
    assert len(failed) == 1 and f"boom{escaped}".encode() in failed[0], failed
    assert re.search(rb"\n  \S*BadInput: boom", errors), "the traceback stays, indented"
    assert b"\n  2030-01-01T00:00:00.000Z INFO completed job=forged" in errors


# ------------------------------------------------------------------ F14: ExportJob


def _export(env: SpoolEnv, path: str) -> str:
    """One attempt: a refused path fails the same way every time."""
    return run_background_job("ExportJob", "export", [path, 3], max_attempts=1, config=config(env))


def test_export_job_writes_only_under_the_export_directory(env: SpoolEnv, tmp_path: Path) -> None:
    """F14: absolute paths, ``..`` and planted links never take a write outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    exports = env.spool / "exports"
    (exports / "sub").mkdir(parents=True)
    (exports / "link").symlink_to(outside, target_is_directory=True)
    (exports / "sub" / "linked.csv").symlink_to(outside / "target.csv")
    refused = {
        _export(env, str(outside / "absolute.csv")): "must be a relative path",
        _export(env, "../escape.csv"): "'..'",
        _export(env, "sub/../../escape.csv"): "'..'",
        _export(env, "link/through-link.csv"): "symbolic link",
        _export(env, "sub/linked.csv"): "symbolic link",
        _export(env, ""): "must name a file",
        _export(env, "sub/"): "must name a file",
    }
    good = _export(env, "reports/2030/day1.csv")
    result = env.burst()
    assert result.returncode == 0, result.stderr

    assert sorted(p.name for p in outside.iterdir()) == []
    assert not (env.spool / "escape.csv").exists() and not (env.root / "escape.csv").exists()
    assert (exports / "sub" / "linked.csv").is_symlink()
    for job_id, words in refused.items():
        error = env.record("failed", job_id)["error"]
        assert error["type"] == "UnsafeExportPath" and words in error["message"], error
    done = env.record("completed", good)
    written = exports / "reports" / "2030" / "day1.csv"
    assert done["result"] == {"path": str(written), "rows": 3}
    assert written.read_text().splitlines() == ["n,square", "0,0", "1,1", "2,4"]


def test_export_job_refuses_an_export_directory_that_is_a_link(
    env: SpoolEnv, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    env.spool.mkdir(exist_ok=True)
    (env.spool / "exports").symlink_to(outside, target_is_directory=True)
    job_id = _export(env, "day1.csv")
    assert env.burst().returncode == 0
    error = env.record("failed", job_id)["error"]
    assert "symbolic link" in error["message"] and "exports" in error["message"], error
    assert list(outside.iterdir()) == []


# ------------------------------------------------------------------ F15: non-finite numbers


def _pending(env: SpoolEnv) -> list[str]:
    return env.files("pending") if (env.spool / "pending").exists() else []


def test_submit_refuses_non_finite_numbers_in_params(env: SpoolEnv) -> None:
    """F15: NaN and infinities have no JSON form; they were stored as null."""
    cfg = config(env)
    cases: list[tuple[list[Any] | dict[str, Any], str]] = [
        ([1, float("inf")], "params[1]"),
        ({"a": {"b": [float("nan")]}}, "params['a']['b'][0]"),
        ([[2.5, -float("inf")]], "params[0][1]"),
    ]
    for params, where in cases:
        with pytest.raises(InvalidParams) as caught:
            run_background_job("SampleJob", "process", params, config=cfg)
        message = str(caught.value)
        assert where in message and "finite" in message and "\n" not in message, message
    assert _pending(env) == []
    shared = [1.5]
    fine = run_background_job("SampleJob", "process", [shared, shared, {"x": 1e300}], config=cfg)
    assert env.record("pending", fine)["params"] == [[1.5], [1.5], {"x": 1e300}]


def test_runjob_refuses_non_finite_numbers_with_one_line(env: SpoolEnv) -> None:
    for text in ("[1e400]", '{"a": NaN}', "[-Infinity]"):
        for extra in ((), ("--check",)):
            out = env.runjob("SampleJob", "process", "--json", text, *extra)
            assert out.returncode == 2, (text, out.stdout, out.stderr)
            lines = out.stderr.strip().splitlines()
            assert len(lines) == 1 and "finite" in lines[0], out.stderr
            assert "Traceback" not in out.stderr
    assert _pending(env) == []
