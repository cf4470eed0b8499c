"""Hostile input at the engine's edges: log lines, the demo export job, submits.

Each test plays an attack through real files and real runner processes (or
the real submit paths) and checks what lands on disk.
"""

from __future__ import annotations

import re

from tests.conftest import SpoolEnv
from tests.support.spoolkit import drop_aged, job_doc

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
