"""Hostile and broken input reaching a real runner: files, names, ids, config, params.

Every case is a real file in a private spool handled by a real runner
process. A file that is not a job must end in corrupt/ byte for byte with a
reason; a job that may not run must end in failed/ with a reason; nothing
hostile may execute (the Marker file it would write stays absent); the
runner lives on and leaves nothing behind in pending/.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from jobspool import actions
from jobspool.cli import main as cli_main
from jobspool.errors import JobNotFound
from jobspool.model import is_valid_id
from jobspool.spool import Spool
from tests.conftest import REPO, SpoolEnv, wait_until
from tests.support.evil_marker import MARKER_ENV
from tests.support.hostile import (
    STATUSES,
    age,
    all_jobs,
    corrupt_problem,
    drop_old,
    failed_problem,
    files_under,
    job_names,
    marker_job,
    plant_socket,
    snapshot,
)

EMPTY: dict[str, list[str]] = {s: [] for s in STATUSES}


def burst_ok(env: SpoolEnv, limit: float = 30.0) -> float:
    """Run a burst runner; it must exit 0 without a traceback. Returns seconds taken."""
    started = time.monotonic()
    try:
        out = env.burst(timeout=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the burst runner did not exit within {limit}s: it hung on the input")
    took = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return took


def corrupt_names(env: SpoolEnv) -> list[str]:
    folder = env.spool / "corrupt"
    return sorted(n for n in os.listdir(folder) if not n.endswith(".reason.txt"))


# ---------------------------------------------------------------- truncation


def test_every_truncation_of_a_job_is_quarantined_and_never_runs(
    env: SpoolEnv, tmp_path: Path
) -> None:
    marker = tmp_path / "m"
    whole = marker_job(marker)
    cuts = {f"cut-{k:04d}.json": whole[:k] for k in range(len(whole))}
    for name, data in cuts.items():
        drop_old(env, name, data)
    # A whole copy in the same pass proves the runner does run what is a job.
    control = tmp_path / "control"
    drop_old(env, "whole.json", marker_job(control, "whole"))

    burst_ok(env)

    problems = [
        p
        for name, data in cuts.items()
        if (p := corrupt_problem(env, name, data, "empty file" if not data else "not valid JSON"))
    ]
    assert problems == []
    assert not marker.exists(), "a truncated job ran"
    assert control.read_text() == "whole"
    assert all_jobs(env) == {**EMPTY, "completed": ["whole.json"]}
    assert corrupt_names(env) == sorted(cuts)


# ---------------------------------------------------------------- documents


def _job_with(marker: Path, tail: bytes) -> bytes:
    """A Marker job with raw JSON text inserted before its closing brace."""
    return marker_job(marker)[:-1] + b"," + tail + b"}"


def _not_jobs(m: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, part of the reason): files that are not jobs at all."""
    head = b'{"job":"Marker","method":"touch","params":["' + str(m).encode() + b'",'
    return {
        "empty.json": (b"", "empty file"),
        "blank.json": (b" \r\n\t ", "empty file"),
        "utf8.json": (head + b'"\xc3\x28"]}', "not UTF-8"),
        "latin1.json": (head + b'"caf\xe9"]}', "not UTF-8"),
        "bom.json": (b"\xef\xbb\xbf" + marker_job(m), "byte order mark"),
        "nan.json": (_job_with(m, b'"priority":NaN'), "NaN is not valid JSON"),
        "inf.json": (_job_with(m, b'"timeout_seconds":Infinity'), "Infinity is not valid JSON"),
        "ninf.json": (_job_with(m, b'"timeout_seconds":-Infinity'), "Infinity is not valid JSON"),
        "bigfloat.json": (_job_with(m, b'"timeout_seconds":1e999'), "out of range"),
        "dupkey.json": (_job_with(m, b'"method":"touch"'), "duplicate key 'method'"),
        "deep.json": (head + b"[" * 10_000 + b"]" * 10_000 + b"]}", "nested"),
        "digits.json": (head + b"9" * 5000 + b"]}", "not valid JSON"),
        "fdigits.json": (head + b"9" * 5000 + b".5]}", "out of range"),
        "huge.json": (head + b'"' + b"x" * (3 << 20) + b'"]}', "larger than the"),
        "job-int.json": (b'{"job":5,"method":"touch","params":[]}', "not a valid job: job"),
        "params-str.json": (
            b'{"job":"Marker","method":"touch","params":"' + str(m).encode() + b'"}',
            "not a valid job: params",
        ),
        "prio-str.json": (_job_with(m, b'"priority":"high"'), "priority"),
        "attempts-neg.json": (_job_with(m, b'"max_attempts":-1'), "max_attempts"),
        "version.json": (_job_with(m, b'"version":2'), "version"),
        "unknown.json": (_job_with(m, b'"run_as":"root"'), "run_as: unknown field"),
        "class.json": (
            _job_with(m, b'"class":"tests.support.evil_marker.Evil"'),
            "class: unknown field",
        ),
        "nested-unknown.json": (
            _job_with(m, b'"history":[{"at":"2026-01-01T00:00:00","action":"x","sudo":1}]'),
            "unknown field",
        ),
        "missing.json": (b'{"method":"touch","params":[]}', "job: Field required"),
        "array.json": (b"[" + marker_job(m) + b"]", "must hold a JSON object, not list"),
        "number.json": (b"42", "must hold a JSON object, not int"),
        "string.json": (b'"Marker.touch"', "must hold a JSON object, not str"),
        "null.json": (b"null", "must hold a JSON object, not NoneType"),
        "two-docs.json": (marker_job(m) + marker_job(m), "not valid JSON"),
        "comment.json": (b"// job\n" + marker_job(m), "not valid JSON"),
        "nul.json": (marker_job(m)[:10] + b"\x00" + marker_job(m)[10:], "not valid JSON"),
    }


def _refused_jobs(m: Path) -> dict[str, tuple[bytes, str, str]]:
    """id -> (bytes, error type, message part): jobs that may not run."""
    path = str(m)
    return {
        "not-listed": (
            json.dumps({"job": "Nope", "method": "touch", "params": [path]}).encode(),
            "NotAllowed",
            "job 'Nope' is not in the allow-list",
        ),
        "bad-method": (
            json.dumps({"job": "Marker", "method": "remove", "params": [path]}).encode(),
            "NotAllowed",
            "method 'remove' is not allowed for Marker",
        ),
        "extra-kw": (
            json.dumps(
                {"job": "Marker", "method": "touch", "params": {"path": path, "mode": "w"}}
            ).encode(),
            "InvalidParams",
            "unexpected keyword argument 'mode'",
        ),
        "too-many": (
            json.dumps({"job": "Marker", "method": "touch", "params": [path, "t", "u"]}).encode(),
            "InvalidParams",
            "too many positional arguments",
        ),
        "wrong-type": (
            json.dumps({"job": "Marker", "method": "touch", "params": [path, ["t"]]}).encode(),
            "InvalidParams",
            "param 'text'",
        ),
    }


def test_documents_that_are_not_jobs_or_may_not_run_never_execute(
    env: SpoolEnv, tmp_path: Path
) -> None:
    marker = tmp_path / "m"
    not_jobs = _not_jobs(marker)
    refused = _refused_jobs(marker)
    for name, (data, _reason) in not_jobs.items():
        drop_old(env, name, data)
    for job_id, (data, _type, _message) in refused.items():
        drop_old(env, f"{job_id}.json", data)

    burst_ok(env)

    problems = [
        p for n, (data, reason) in not_jobs.items() if (p := corrupt_problem(env, n, data, reason))
    ]
    problems += [
        p for i, (_d, kind, msg) in refused.items() if (p := failed_problem(env, i, kind, msg))
    ]
    assert problems == []
    assert not marker.exists(), "a hostile document ran"
    assert all_jobs(env) == {**EMPTY, "failed": sorted(f"{i}.json" for i in refused)}
    assert corrupt_names(env) == sorted(not_jobs)


def test_lone_surrogate_escapes_are_not_jobs_and_do_not_wedge_the_runner(
    env: SpoolEnv, tmp_path: Path
) -> None:
    # Valid JSON syntax, but a lone surrogate can never be written back as
    # UTF-8: a record holding one cannot be stored, so the file is not a job.
    marker = tmp_path / "m"
    cases = {
        "param.json": _job_with(marker, b'"submitted_by":"\\udcff"'),
        "text.json": b'{"job":"Marker","method":"touch","params":["'
        + str(marker).encode()
        + b'","\\ud800"]}',
        "name.json": b'{"job":"Nope\\udfff","method":"touch","params":[]}',
    }
    for name, data in cases.items():
        drop_old(env, name, data)

    burst_ok(env, limit=10)

    problems = [p for n, d in cases.items() if (p := corrupt_problem(env, n, d, ""))]
    assert problems == []
    assert not marker.exists(), "a job holding a lone surrogate ran"
    assert all_jobs(env) == EMPTY


def test_dates_beyond_the_calendar_are_not_jobs_and_do_not_crash_the_runner(
    env: SpoolEnv, tmp_path: Path
) -> None:
    # Parseable ISO dates whose UTC value falls outside year 1..9999.
    marker = tmp_path / "m"
    cases = {
        "late.json": _job_with(marker, b'"not_before":"9999-12-31T23:59:59-01:00"'),
        "early.json": _job_with(marker, b'"created_at":"0001-01-01T00:00:00+01:00"'),
        "history.json": _job_with(
            marker, b'"history":[{"at":"9999-12-31T23:30:00-23:59","action":"submitted"}]'
        ),
    }
    for name, data in cases.items():
        drop_old(env, name, data)
    control = tmp_path / "control"
    drop_old(env, "ok.json", marker_job(control, "ok"))

    burst_ok(env, limit=10)

    problems = [p for n, d in cases.items() if (p := corrupt_problem(env, n, d, ""))]
    assert problems == []
    assert not marker.exists()
    assert control.read_text() == "ok"
    assert all_jobs(env) == {**EMPTY, "completed": ["ok.json"]}


# ---------------------------------------------------------------- non-files


def test_planted_links_fifos_sockets_and_directories_are_quarantined_untouched(
    env: SpoolEnv, tmp_path: Path
) -> None:
    marker = tmp_path / "m"
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "job.json"
    target.write_bytes(marker_job(marker))
    age(target)
    hard_target = outside / "hard.json"
    hard_target.write_bytes(marker_job(marker, "hard"))
    age(hard_target)

    pending = env.spool / "pending"
    pending.mkdir(parents=True, exist_ok=True)
    os.symlink(target, pending / "link.json")
    os.symlink(target, pending / "20260101-000000-000000-0a0b0c0d.json")  # looks like an id
    os.symlink(tmp_path / "nowhere.json", pending / "dangling.json")
    os.symlink(outside, pending / "dirlink.json")
    os.link(hard_target, pending / "hard.json")
    os.mkfifo(pending / "fifo.json")
    plant_socket(pending / "sock.json")
    (pending / "dir.json").mkdir()
    (pending / "dir.json" / "inner.json").write_bytes(marker_job(marker))
    planted = sorted(os.listdir(pending))
    for name in planted:
        age(pending / name)  # the hard link shares its inode (and mtime) with hard_target
    before = {p.name: snapshot(p) for p in (target, hard_target)}

    took = burst_ok(env, limit=30)

    assert took < 20, f"the runner took {took:.1f}s: something blocked"
    assert not marker.exists(), "a planted file ran"
    assert {p.name: snapshot(p) for p in (target, hard_target)} == before
    assert sorted(os.listdir(outside)) == ["hard.json", "job.json"]
    corrupt = env.spool / "corrupt"
    assert corrupt_names(env) == planted
    missing_reasons = [n for n in planted if not (corrupt / f"{n}.reason.txt").is_file()]
    assert missing_reasons == []
    assert os.readlink(corrupt / "link.json") == str(target)
    assert os.readlink(corrupt / "dangling.json") == str(tmp_path / "nowhere.json")
    assert os.readlink(corrupt / "dirlink.json") == str(outside)
    assert os.path.samefile(corrupt / "hard.json", hard_target)
    assert stat.S_ISFIFO(os.lstat(corrupt / "fifo.json").st_mode)
    assert stat.S_ISSOCK(os.lstat(corrupt / "sock.json").st_mode)
    assert (corrupt / "dir.json" / "inner.json").read_bytes() == marker_job(marker)
    assert all_jobs(env) == EMPTY


def test_a_daemon_survives_hostile_files_and_still_runs_good_jobs(
    env: SpoolEnv, tmp_path: Path
) -> None:
    marker = tmp_path / "m"
    runner = env.start_runner()
    wait_until(lambda: job_names(env, "runners"), 15, "the runner's heartbeat")
    pending = env.spool / "pending"
    os.mkfifo(pending / "fifo.json")
    plant_socket(pending / "sock.json")
    os.symlink(tmp_path / "nowhere", pending / "link.json")
    (pending / "dir.json").mkdir()
    deep = b'{"job":"Marker","method":"touch","params":[' + b"[" * 10_000 + b"]" * 10_000 + b"]}"
    drop_old(env, "deep.json", deep)
    drop_old(env, "huge.json", b'{"job":"' + b"J" * (3 << 20) + b'"}')
    # Only regular files get time for a slow writer; these are judged at once.
    drop_old(env, "cut.json", marker_job(marker)[:-1])
    expected = sorted(
        ["fifo.json", "sock.json", "link.json", "dir.json", "deep.json", "huge.json", "cut.json"]
    )

    wait_until(
        lambda: corrupt_names(env) == expected,
        20,
        f"all hostile files in corrupt/ (have {corrupt_names(env)})",
    )
    assert runner.proc.poll() is None, runner.stderr()
    good = tmp_path / "good"
    drop_old(env, "good.json", marker_job(good, "good"))
    env.wait_status("good", "completed")
    assert good.read_text() == "good"
    assert not marker.exists()
    assert runner.stop() == 0, runner.stderr()
    assert "Traceback" not in runner.stderr()
    assert all_jobs(env) == {**EMPTY, "completed": ["good.json"]}


# ---------------------------------------------------------------- names


def test_odd_file_names_run_once_under_a_fresh_id_or_are_quarantined(
    env: SpoolEnv, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    long_name = "n" * 250 + ".json"  # 255 bytes: the longest name Linux allows
    jobs = {
        "a..b.json": "dots",
        "x~runner~1.json": "claim-like",
        "名前-jöb.json": "non-ascii",
        long_name: "long",
    }
    doc = json.dumps({"job": "Ledger", "method": "record", "params": [str(ledger)]}).encode()
    for name in jobs:
        drop_old(env, name, doc)
    garbage = {"g..g.json": b"{", "ゴミ.json": b"\xff", "g" * 250 + ".json": b"[1"}
    for name, data in garbage.items():
        drop_old(env, name, data)
    hidden = {".x.json": doc, ".nfs000000000001": doc}
    for name, data in hidden.items():
        drop_old(env, name, data)

    burst_ok(env)

    records = [json.loads(p.read_text()) for p in (env.spool / "completed").iterdir()]
    by_name = {r.get("original_name"): r for r in records}
    assert sorted(by_name, key=str) == sorted(jobs, key=str)
    bad_ids = [r["id"] for r in records if not is_valid_id(r["id"])]
    assert bad_ids == []
    assert sorted(n for n in os.listdir(env.spool / "completed")) == sorted(
        f"{r['id']}.json" for r in records
    )
    runs = sorted(line.split()[0] for line in ledger.read_text().splitlines())
    assert runs == sorted(r["id"] for r in records), "each job must run exactly once"
    problems = [p for n, d in garbage.items() if (p := corrupt_problem(env, n, d, "not"))]
    assert problems == []
    # Dot files are not jobs: left alone where they are, never run.
    assert sorted(os.listdir(env.spool / "pending")) == sorted(hidden)
    for name, data in hidden.items():
        assert (env.spool / "pending" / name).read_bytes() == data
    assert job_names(env, "running") == []


def test_a_file_name_that_is_not_utf8_does_not_wedge_the_runner(
    env: SpoolEnv, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    name = os.fsdecode(b"bad-\xff\xfe.json")
    doc = json.dumps({"job": "Ledger", "method": "record", "params": [str(ledger)]}).encode()
    drop_old(env, name, doc)
    drop_old(env, os.fsdecode(b"junk-\xff.json"), b"{")

    burst_ok(env, limit=10)

    assert job_names(env, "pending") == []
    assert job_names(env, "running") == []
    assert corrupt_problem(env, os.fsdecode(b"junk-\xff.json"), b"{", "not valid JSON") is None
    done = job_names(env, "completed")
    ran = ledger.read_text().splitlines() if ledger.exists() else []
    # Either it ran once and its record says where it came from, or it was
    # refused without running; it may not vanish or run without a record.
    if done:
        assert len(done) == 1 and len(ran) == 1
        record = json.loads((env.spool / "completed" / done[0]).read_text())
        assert record["original_name"] in (name, "bad-\\xff\\xfe.json", "bad-\ufffd\ufffd.json")
    else:
        assert ran == []
        assert corrupt_names(env) == sorted([name, os.fsdecode(b"junk-\xff.json")])


# ---------------------------------------------------------------- allow-list escapes


ESCAPES = {
    "os-system": ("os.system", "process"),
    "os": ("os", "system"),
    "dunder-import": ("__import__", "process"),
    "class-attr": ("jobs.SampleJob.__class__", "process"),
    "sample-init": ("SampleJob.__init__", "process"),
    "globals": ("process.__globals__", "process"),
    "evil-module": ("tests.support.evil_marker", "process"),
    "evil-class": ("tests.support.evil_marker.Evil", "process"),
    "builtins": ("builtins.eval", "process"),
    "method-init": ("SampleJob", "__init__"),
    "method-private": ("SampleJob", "_private"),
    "method-class": ("SampleJob", "__class__"),
    "method-dotted": ("SampleJob", "process.__globals__"),
    "method-subclasses": ("Marker", "__subclasses__"),
}


def _refusal(method: str) -> str:
    """The part of the NotAllowed message that says which check refused."""
    return "is not in the allow-list" if method in ("process", "system") else "is not allowed"


def test_job_names_reaching_outside_the_allow_list_import_nothing(
    env: SpoolEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = tmp_path / "evil-imported"
    monkeypatch.setenv(MARKER_ENV, str(canary))
    for job_id, (job, method) in ESCAPES.items():
        doc = {"job": job, "method": method, "params": ["tests.support.evil_marker"]}
        drop_old(env, f"{job_id}.json", json.dumps(doc).encode())
    kwargs = {
        "job": "Marker",
        "method": "touch",
        "params": {"path": str(tmp_path / "m"), "__class__": "x"},
    }
    drop_old(env, "kwargs.json", json.dumps(kwargs).encode())

    burst_ok(env)

    problems = [
        p
        for i, (_job, method) in ESCAPES.items()
        if (p := failed_problem(env, i, "NotAllowed", _refusal(method)))
    ]
    problems += [p for p in [failed_problem(env, "kwargs", "InvalidParams", "__class__")] if p]
    assert problems == []
    assert not (tmp_path / "m").exists()
    assert not canary.exists(), canary.read_text()

    # The canary does work: importing the module on purpose leaves the mark.
    subprocess.run(
        [sys.executable, "-c", "import tests.support.evil_marker"],
        check=True,
        cwd=REPO,
        env={**env.environ(), MARKER_ENV: str(canary)},
        timeout=60,
    )
    assert canary.read_text().startswith("imported in pid")


TAGGED_CONFIGS = {
    "apply": "spool: spool\nworkers: !!python/object/apply:os.system ['touch {pwned}']\n",
    "top": "!!python/object/apply:os.system ['touch {pwned}']\n",
    "name": (
        "spool: spool\nallowed_jobs:\n  Evil:\n    class: !!python/name:os.system\n"
        "    allowed_methods: [process]\n"
    ),
    "module": "spool: spool\nextra: !!python/module:tests.support.evil_marker\n",
}


@pytest.mark.parametrize("kind", sorted(TAGGED_CONFIGS))
def test_a_config_with_python_tags_is_refused_and_runs_nothing(
    env: SpoolEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    pwned = tmp_path / "pwned"
    canary = tmp_path / "evil-imported"
    monkeypatch.setenv(MARKER_ENV, str(canary))
    env.config.write_text(TAGGED_CONFIGS[kind].format(pwned=pwned))
    commands = [["runner", "--config", str(env.config), "--burst", "--quiet"]]
    if kind == "apply":  # the writer and the status command read the same file
        commands += [
            ["submit", "SampleJob", "process", "p1", "--config", str(env.config)],
            ["status", "--config", str(env.config)],
        ]
    for args in commands:
        out = env.cli(*args)
        assert out.returncode == 2, (args[0], out.returncode, out.stderr)
        assert "Traceback" not in out.stderr, out.stderr
        assert out.stderr.startswith(f"jobspool: error: {env.config}: not valid YAML"), out.stderr
    assert not pwned.exists()
    assert not canary.exists()
    assert not env.spool.exists() or all_jobs(env) == EMPTY


# ---------------------------------------------------------------- params


NASTY_TEXTS = {
    "subshell": "$(touch x)",
    "backticks": "`touch x`",
    "chain": "a; touch x && touch y || touch z | cat > x &",
    "quotes": "'\"'\"'; touch x; echo '",
    "newlines": "line1\nline2\r\nline3\n; touch x\n",
    "nul": "before\x00after",
    "glob": "* ? [a-z] ~ {a,b} $HOME ${PATH}",
    "unicode": "é — 名前 \u202e gnp.exe",
    "ansi": "\x1b[31mred\x1b[0m \x07",
}


def test_params_with_shell_metacharacters_reach_the_method_as_data(
    env: SpoolEnv, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out $(touch x) `touch y`; |&"
    out_dir.mkdir()
    for key, text in NASTY_TEXTS.items():
        drop_old(env, f"{key}.json", marker_job(out_dir / key, text))
    # The writer CLI passes its arguments on as data too (no NUL: argv cannot carry it).
    cli_text = "$(touch x) `touch y` ; rm -rf x\nz"
    cli_id = env.runjob(
        "Marker", "touch", str(out_dir / "cli"), cli_text, "--config", str(env.config)
    )
    assert cli_id.returncode == 0, cli_id.stderr
    json_id = env.runjob(
        "Marker",
        "touch",
        "--json",
        json.dumps([str(out_dir / "json"), "nul\x00 $(touch x)"]),
        "--config",
        str(env.config),
    )
    assert json_id.returncode == 0, json_id.stderr

    burst_ok(env)

    texts = {**NASTY_TEXTS, "cli": cli_text, "json": "nul\x00 $(touch x)"}
    wrong = {
        k: (out_dir / k).read_bytes()
        for k, t in texts.items()
        if not (out_dir / k).exists() or (out_dir / k).read_bytes() != t.encode()
    }
    assert wrong == {}
    for key, text in NASTY_TEXTS.items():
        assert env.record("completed", key)["result"] == text
    assert env.record("completed", cli_id.stdout.strip())["result"] == cli_text
    assert sorted(os.listdir(out_dir)) == sorted(texts)
    for folder in (env.root, tmp_path, REPO, Path.cwd()):
        made = [n for n in ("x", "y", "z") if (folder / n).exists()]
        assert made == [], f"a shell ran: {made} in {folder}"


# ---------------------------------------------------------------- ids


BAD_IDS = [
    "..",
    "../x",
    "../../etc/passwd",
    "%2e%2e",
    "a/b",
    "/etc/passwd",
    ".hidden",
    "x" * 300,
    "x\ny",
    "a b",
    "",
    "~",
    "x~r~1",
    "-",
    "..x",
    "x..",
    "\\x",
]


def _decoy(job_id: str) -> bytes:
    """A failed job record: retrying it would succeed if the id resolved to it."""
    return json.dumps(
        {
            "job": "Marker",
            "method": "touch",
            "params": [],
            "id": job_id,
            "revision": 2,
            "reason": "decoy",
        }
    ).encode()


def _id_problem(code: int, out: str, err: str) -> str | None:
    """None when a command refused an id the right way: exit 2, one line, not found."""
    lines = err.splitlines()
    if code != 2 or out or "Traceback" in err or len(lines) != 1 or "no job with id" not in err:
        return f"exit {code}, stdout {out!r}, stderr {err!r}"
    return None


def test_ids_that_are_not_ids_are_not_found_and_touch_nothing(
    env: SpoolEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith("JOBSPOOL_")]:
        monkeypatch.delenv(name)
    spool = Spool(env.spool)
    decoys = {
        env.spool / "x.json": _decoy("x"),
        env.spool / "failed" / "...json": _decoy(".."),
        env.spool / "failed" / ".hidden.json": _decoy(".hidden"),
        env.spool / "failed" / "a" / "b.json": _decoy("b"),
        env.spool / "pending" / ".hidden.json": _decoy(".hidden"),
        env.root / "x.json": _decoy("x"),
    }
    for path, data in decoys.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    before = files_under(env.root)

    problems = []
    # The real commands, as separate processes, for a few ids...
    for command, job_id in (("show", ".."), ("cancel", "../x"), ("retry", "a/b")):
        done = env.cli(command, "--config", str(env.config), "--", job_id)
        if problem := _id_problem(done.returncode, done.stdout, done.stderr):
            problems.append((command, job_id, problem))
    # ...and the same entry point in-process for every id and command.
    for command in ("show", "cancel", "retry"):
        for job_id in [i for i in BAD_IDS if i]:
            code = cli_main([command, "--config", str(env.config), "--", job_id])
            captured = capsys.readouterr()
            if problem := _id_problem(code, captured.out, captured.err):
                problems.append((command, job_id, problem))
    assert problems == []

    for job_id in [*BAD_IDS, "a\x00b", "\x00", "x.json\x00.txt"]:
        assert spool.find(job_id) is None, job_id
        assert spool.locate(job_id) is None, job_id
        for action in (spool.get, partial(actions.cancel, spool), partial(actions.retry, spool)):
            with pytest.raises(JobNotFound):
                action(job_id)
    assert files_under(env.root) == before


# ---------------------------------------------------------------- layout


def _swap_for_link(env: SpoolEnv, tmp_path: Path, folder: str) -> tuple[Path, Path]:
    """Replace one spool directory by a link to a directory holding a valid job."""
    marker = tmp_path / "m"
    Spool(env.spool)  # the normal layout first
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "job.json").write_bytes(marker_job(marker))
    age(elsewhere / "job.json")
    (env.spool / folder).rename(tmp_path / f"old-{folder}")
    os.symlink(elsewhere, env.spool / folder)
    return marker, elsewhere


def _refused_for_link(prog: str, code: int, err: str, link: Path) -> None:
    assert code == 2, (prog, code, err)
    assert "Traceback" not in err, err
    assert err.strip() == f"{prog}: error: {link} is a symbolic link; refusing to use it", err


@pytest.mark.parametrize("folder", ["running", "failed", "tmp", "corrupt", "control", "logs"])
def test_a_spool_directory_swapped_for_a_symlink_is_refused(
    env: SpoolEnv, tmp_path: Path, folder: str
) -> None:
    marker, elsewhere = _swap_for_link(env, tmp_path, folder)
    before = files_under(elsewhere)

    burst = env.burst(timeout=30)

    _refused_for_link("jobspool", burst.returncode, burst.stderr, env.spool / folder)
    assert not marker.exists()
    assert files_under(elsewhere) == before
    assert os.path.islink(env.spool / folder)


def test_pending_swapped_for_a_symlink_is_refused_by_runner_daemon_and_writer(
    env: SpoolEnv, tmp_path: Path
) -> None:
    marker, elsewhere = _swap_for_link(env, tmp_path, "pending")
    before = files_under(elsewhere)
    link = env.spool / "pending"

    burst = env.burst(timeout=30)
    daemon = env.start_runner()
    code = daemon.wait(30)
    runjob = env.runjob("Marker", "touch", str(marker), "--config", str(env.config))

    _refused_for_link("jobspool", burst.returncode, burst.stderr, link)
    _refused_for_link("jobspool", code, daemon.stderr(), link)
    _refused_for_link("runjob", runjob.returncode, runjob.stderr, link)
    assert not marker.exists()
    assert files_under(elsewhere) == before
    assert os.path.islink(link)
