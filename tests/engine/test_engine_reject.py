"""Jobs that may not run: refused by writers, parked by the runner, never executed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jobspool.cli import runjob_main
from jobspool.errors import InvalidJobFile, InvalidParams, JobspoolError, NotAllowed
from jobspool.submit import run_background_job
from tests.conftest import SpoolEnv, wait_until
from tests.support.spoolkit import (
    allow_extra_jobs,
    assert_one_line_error,
    config,
    corrupt_entries,
    drop_aged,
    job_doc,
    job_files_everywhere,
    log_text,
    outcomes,
    spool_files,
    stop_clean,
)
from tests.support.testjobs import BadInput

# ---------------------------------------------------------------- writer side

WRITER_CASES: dict[str, tuple[list[str], str]] = {
    "name": (["Nope", "process", "p1"], "job 'Nope' is not in the allow-list"),
    "os-system": (["os", "system", "true"], "job 'os' is not in the allow-list"),
    "method": (
        ["SampleJob", "delete"],
        "method 'delete' is not allowed for SampleJob (allowed: process)",
    ),
    "too-many": (["Typed", "add", "1", "2", "3"], "too many positional arguments"),
    "too-few": (["Typed", "add"], "missing a required argument: 'a'"),
    "wrong-type": (["Typed", "add", "x"], "param 'a': Input should be a valid integer"),
    "unknown-keyword": (
        ["Typed", "add", "--json", '{"a": 1, "c": 2}'],
        "got an unexpected keyword argument 'c'",
    ),
    "bad-json": (["SampleJob", "process", "--json", "[1, "], "--json is not valid JSON"),
    "not-object": (
        ["SampleJob", "process", "--json", '"text"'],
        "--json must be a JSON list (positional) or object (keyword)",
    ),
    "both": (
        ["SampleJob", "process", "a", "--json", "[]"],
        "give params either as arguments or with --json, not both",
    ),
    "max-attempts": (
        ["SampleJob", "process", "--max-attempts", "0"],
        "--max-attempts must be at least 1",
    ),
    "negative-delay": (
        ["SampleJob", "process", "--delay", "-1"],
        "delay must be zero or more seconds",
    ),
}


@pytest.fixture
def no_jobspool_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process CLI calls must see only the test's config, as subprocesses do."""
    for name in list(os.environ):
        if name.startswith("JOBSPOOL_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_jobspool_environment")
@pytest.mark.parametrize("case", sorted(WRITER_CASES))
def test_runjob_refuses_with_one_line_and_writes_nothing(
    env: SpoolEnv, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    args, message = WRITER_CASES[case]
    # The whole matrix runs the CLI entry point in this process (fast); the
    # test below runs the real runjob program for a few of the same cases.
    code = runjob_main([*args, "--config", str(env.config)])
    captured = capsys.readouterr()
    out = subprocess.CompletedProcess(args, code, captured.out, captured.err)
    assert_one_line_error(out, "runjob", message)
    assert spool_files(env) == []


@pytest.mark.parametrize("case", ["name", "wrong-type", "bad-json", "max-attempts"])
def test_runjob_program_refuses_with_exit_2_and_no_traceback(env: SpoolEnv, case: str) -> None:
    args, message = WRITER_CASES[case]
    out = env.runjob(*args, "--config", str(env.config))
    assert_one_line_error(out, "runjob", message)
    assert spool_files(env) == []


def test_runjob_refuses_an_oversize_job(env: SpoolEnv) -> None:
    env.write_config(max_job_bytes=1024)
    big = json.dumps({"blob": "x" * 2000})
    out = env.runjob("SampleJob", "process", "--json", big, "--config", str(env.config))
    assert_one_line_error(out, "runjob", "the cap is 1024")
    assert spool_files(env) == []


def test_runjob_refuses_unknown_options(env: SpoolEnv) -> None:
    out = env.runjob("SampleJob", "process", "a", "--bogus", "1", "--config", str(env.config))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "unrecognized arguments: --bogus" in out.stderr
    assert spool_files(env) == []


HELPER_CASES: list[Any] = [
    pytest.param("Nope", "process", ["p1"], NotAllowed, "not in the allow-list", id="name"),
    pytest.param(BadInput, "process", ["p1"], NotAllowed, "is not in the allow-list", id="class"),
    pytest.param(
        "SampleJob", "delete", [], NotAllowed, "method 'delete' is not allowed", id="method"
    ),
    pytest.param("Typed", "add", [1, 2, 3], InvalidParams, "too many positional", id="count"),
    pytest.param("Typed", "add", ["x"], InvalidParams, "param 'a'", id="type"),
    pytest.param(
        "Typed", "add", {"a": 1, "c": 2}, InvalidParams, "unexpected keyword", id="unknown-keyword"
    ),
    pytest.param(
        "Typed", "greet", ["bob", True], InvalidParams, "too many positional", id="keyword-only"
    ),
    pytest.param("SampleJob", "process", "p1", InvalidParams, "must be a list", id="not-list"),
]


@pytest.mark.parametrize(("job", "method", "params", "error", "message"), HELPER_CASES)
def test_helper_refuses_and_writes_nothing(
    env: SpoolEnv, *, job: Any, method: str, params: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        run_background_job(job, method, params, config=str(env.config))
    assert isinstance(caught.value, JobspoolError)
    assert spool_files(env) == []


def test_helper_refuses_an_oversize_job(env: SpoolEnv) -> None:
    env.write_config(max_job_bytes=1024)
    with pytest.raises(InvalidJobFile, match="the cap is 1024"):
        run_background_job("SampleJob", "process", ["x" * 2000], config=str(env.config))
    assert env.files("pending") == []
    assert os.listdir(env.spool / "tmp") == []


# ---------------------------------------------------------------- dropped by hand


def test_dropped_jobs_that_may_not_run_fail_with_reason_and_never_run(
    env: SpoolEnv, tmp_path: Path
) -> None:
    # Marker is left out of the allow-list; Guarded allows touch but not sneak.
    allow_extra_jobs(env, without=("Marker",))
    marks = {
        n: tmp_path / f"mark-{n}"
        for n in ("os", "dotted", "unlisted", "method", "private", "count", "keyword", "type")
    }
    cases: dict[str, tuple[str, str, str]] = {
        # name: (file content, error type, message part)
        "os": (
            job_doc("os", "system", [f"touch {marks['os']}"]),
            "NotAllowed",
            "job 'os' is not in the allow-list",
        ),
        "dotted": (
            job_doc("tests.support.testjobs.Marker", "touch", [str(marks["dotted"])]),
            "NotAllowed",
            "is not in the allow-list",
        ),
        "unlisted": (
            job_doc("Marker", "touch", [str(marks["unlisted"])]),
            "NotAllowed",
            "job 'Marker' is not in the allow-list",
        ),
        "method": (
            job_doc("Guarded", "sneak", [str(marks["method"])]),
            "NotAllowed",
            "method 'sneak' is not allowed for Guarded",
        ),
        "private": (
            job_doc("Guarded", "__init__", [str(marks["private"])]),
            "NotAllowed",
            "method '__init__' is not allowed",
        ),
        "count": (
            job_doc("Guarded", "touch", [str(marks["count"]), "extra"]),
            "InvalidParams",
            "too many positional arguments",
        ),
        "keyword": (
            job_doc("Guarded", "touch", {"path": str(marks["keyword"]), "mode": "w"}),
            "InvalidParams",
            "unexpected keyword argument 'mode'",
        ),
        "type": (job_doc("Typed", "add", ["x"]), "InvalidParams", "param 'a'"),
    }
    for name, (content, _type, _msg) in cases.items():
        env.drop(f"{name}.json", content)
    result = env.burst()
    assert result.returncode == 0, result.stderr

    problems = []
    for name, (_content, err_type, message) in cases.items():
        if env.status_of(name) != "failed":
            problems.append(f"{name}: is {env.status_of(name)}, not failed")
            continue
        rec = env.record("failed", name)
        if rec["error"] is None or rec["error"]["type"] != err_type:
            problems.append(f"{name}: error {rec['error']}, expected {err_type}")
        elif message not in rec["error"]["message"]:
            problems.append(f"{name}: message {rec['error']['message']!r} lacks {message!r}")
        if not rec["reason"] or "rejected" not in rec["reason"]:
            problems.append(f"{name}: reason {rec['reason']!r} does not say it was rejected")
        if outcomes(rec) not in ([], ["rejected"]):
            problems.append(f"{name}: attempts {outcomes(rec)}: must never be retried")
    assert problems == []
    assert [m.name for m in marks.values() if m.exists()] == []
    errors = log_text(env, "background_jobs_errors.log")
    for name in cases:
        assert f"job={name} " in errors, name

    # A second pass changes nothing: failed jobs stay failed, still never run.
    assert env.burst().returncode == 0
    assert env.files("failed") == sorted(f"{n}.json" for n in cases)
    assert [m.name for m in marks.values() if m.exists()] == []


def _not_jobs(marker: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, part of the reason); each would touch marker if it ran."""
    m = str(marker)
    job = {"job": "Marker", "method": "touch", "params": [m]}
    deep: Any = [m]
    for _ in range(100):
        deep = [deep]
    return {
        "garbage.json": (b"this is not json {", "not valid JSON"),
        "binary.json": (b"\xff\xfe\x00\x01junk", "not UTF-8"),
        "empty.json": (b"", "empty file"),
        "array.json": (json.dumps([job]).encode(), "must hold a JSON object, not list"),
        "string.json": (b'"Marker.touch"', "must hold a JSON object, not str"),
        "unknown.json": (json.dumps({**job, "run_as": "root"}).encode(), "run_as: unknown field"),
        "nan.json": (
            json.dumps(job)[:-1].encode() + b', "priority": NaN}',
            "NaN is not valid JSON",
        ),
        "dupkey.json": (
            json.dumps(job)[:-1].encode() + b', "job": "Marker"}',
            "duplicate key 'job'",
        ),
        "bom.json": (b"\xef\xbb\xbf" + json.dumps(job).encode(), "byte order mark"),
        "oversize.json": (
            json.dumps({**job, "params": [m, "x" * 9000]}).encode(),
            "larger than the 8192-byte cap",
        ),
        "deep.json": (json.dumps({**job, "params": deep}).encode(), "nested deeper than 64"),
        "hugeint.json": (
            json.dumps(job)[:-1].encode() + b', "priority": ' + b"9" * 5000 + b"}",
            "not valid JSON",
        ),
        "wrongtype.json": (json.dumps({**job, "params": m}).encode(), "not a valid job: params"),
        "missing.json": (
            json.dumps({"method": "touch", "params": [m]}).encode(),
            "job: Field required",
        ),
    }


def test_files_that_are_not_jobs_go_to_corrupt_byte_for_byte(env: SpoolEnv, tmp_path: Path) -> None:
    env.write_config(max_job_bytes=8192)
    marker = tmp_path / "marker"
    cases = _not_jobs(marker)
    for name, (data, _reason) in cases.items():
        drop_aged(env, name, data)
    result = env.burst()
    assert result.returncode == 0, result.stderr

    problems = []
    for name, (data, reason) in cases.items():
        kept = env.spool / "corrupt" / name
        note = env.spool / "corrupt" / f"{name}.reason.txt"
        if not kept.exists():
            problems.append(f"{name}: not in corrupt/")
            continue
        if kept.read_bytes() != data:
            problems.append(f"{name}: bytes changed")
        if not note.exists() or reason not in note.read_text():
            problems.append(
                f"{name}: reason {note.read_text() if note.exists() else None!r} lacks {reason!r}"
            )
    assert problems == []
    assert not marker.exists()
    assert job_files_everywhere(env) == {
        s: [] for s in ("pending", "running", "completed", "failed", "cancelled")
    }
    assert sorted(corrupt_entries(env)) == sorted([*cases, *(f"{n}.reason.txt" for n in cases)])
    assert log_text(env, "background_jobs_errors.log").count(" corrupt file=") == len(cases)


def test_links_and_fifos_in_pending_are_quarantined_not_followed(
    env: SpoolEnv, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    outside = tmp_path / "outside.json"
    content = job_doc("Marker", "touch", [str(marker)])
    outside.write_text(content)
    pending = env.spool / "pending"
    pending.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, pending / "link.json")
    os.mkfifo(pending / "fifo.json")
    result = env.burst(timeout=30)
    assert result.returncode == 0, result.stderr
    link = env.spool / "corrupt" / "link.json"
    assert link.is_symlink() and os.readlink(link) == str(outside)
    assert stat.S_ISFIFO(os.lstat(env.spool / "corrupt" / "fifo.json").st_mode)
    assert (env.spool / "corrupt" / "link.json.reason.txt").exists()
    assert (env.spool / "corrupt" / "fifo.json.reason.txt").exists()
    assert outside.read_text() == content
    assert not marker.exists()
    assert env.files("pending") == []


def test_running_daemon_quarantines_a_fresh_garbage_file(env: SpoolEnv, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    runner = env.start_runner()
    data = b'{"job": "Marker", "method": "touch", "params": ["' + str(marker).encode() + b'"'
    env.drop("half.json", data)  # truncated: its writer is not coming back
    wait_until((env.spool / "corrupt" / "half.json").exists, 15, "half.json to reach corrupt/")
    assert (env.spool / "corrupt" / "half.json").read_bytes() == data
    assert "not valid JSON" in (env.spool / "corrupt" / "half.json.reason.txt").read_text()
    # The runner lives on and still runs good jobs.
    good = run_background_job("Marker", "touch", [str(marker)], config=config(env))
    env.wait_status(good, "completed")
    stop_clean(runner)
