"""Helpers for the engine tests: dropping files, reading records and logs, processes.

Everything here works on the real files of a test's private spool; nothing
is mocked. Waiting is always bounded polling (``wait_until``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from jobspool import sealing
from jobspool.config import Config, load_config
from jobspool.sentinel import MARKER
from tests.conftest import TEST_JOBS, RunnerProcess, SpoolEnv, wait_until

# Extra allow-list entries for classes appended to tests/support/testjobs.py.
EXTRA_JOBS: dict[str, Any] = {
    "Guarded": {"class": "tests.support.testjobs.Guarded", "allowed_methods": ["touch"]},
    "Chatty": {"class": "tests.support.testjobs.Chatty", "allowed_methods": ["speak"]},
    "Lingerer": {"class": "tests.support.testjobs.Lingerer", "allowed_methods": ["linger"]},
}


def allow_extra_jobs(env: SpoolEnv, *, without: tuple[str, ...] = ()) -> None:
    """Rewrite the test config with the extra jobs, leaving out the names given."""
    jobs = {k: v for k, v in {**TEST_JOBS, **EXTRA_JOBS}.items() if k not in without}
    env.write_config(allowed_jobs=jobs)


def config(env: SpoolEnv) -> Config:
    """The test's configuration, loaded once (in-process submits reuse it)."""
    return load_config(env.config)


def job_doc(job: str, method: str, params: list[Any] | dict[str, Any], **extra: Any) -> str:
    return json.dumps({"job": job, "method": method, "params": params, **extra})


def drop_aged(env: SpoolEnv, name: str, content: str | bytes, age: float = 30.0) -> Path:
    """Drop a file into pending/ (tmp + rename) whose mtime lies ``age`` seconds back.

    The runner gives a young file that does not parse time for its writer to
    finish; an aged file is judged at once.
    """
    (env.spool / "pending").mkdir(parents=True, exist_ok=True)
    (env.spool / "tmp").mkdir(parents=True, exist_ok=True)
    tmp = env.spool / "tmp" / f"drop-{name}"
    tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    stamp = time.time() - age
    os.utime(tmp, (stamp, stamp))
    dst = env.spool / "pending" / name
    os.rename(tmp, dst)
    return dst


def spool_files(env: SpoolEnv) -> list[str]:
    """Every non-directory entry under the spool but its marker and its key
    (written by the fixture's `jobspool init`), relative; [] if there is no
    spool."""
    if not env.spool.exists():
        return []
    out = []
    for dirpath, _dirs, names in os.walk(env.spool):
        for name in names:
            out.append(os.path.relpath(os.path.join(dirpath, name), env.spool))
    return sorted(p for p in out if p not in (MARKER, sealing.KEY_NAME))


def job_files_everywhere(env: SpoolEnv) -> dict[str, list[str]]:
    """Job file names per status directory (running names keep their claim)."""
    return {s: env.files(s) for s in ("pending", "running", "completed", "failed", "cancelled")}


def corrupt_entries(env: SpoolEnv) -> list[str]:
    d = env.spool / "corrupt"
    return sorted(os.listdir(d)) if d.exists() else []


def log_text(env: SpoolEnv, name: str = "background_jobs.log") -> str:
    path = env.spool / "logs" / name
    return path.read_text(errors="replace") if path.exists() else ""


def job_log(env: SpoolEnv, job_id: str) -> str:
    path = env.spool / "logs" / "jobs" / f"{job_id}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def outcomes(record: dict[str, Any]) -> list[str]:
    return [a["outcome"] for a in record["attempts"]]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_int(path: Path, timeout: float = 20.0) -> int:
    """Wait until path holds an integer (a pid written by a job) and return it."""

    def value() -> int | None:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    found = wait_until(value, timeout, f"{path.name} to hold a number")
    assert found is not None
    return found


def is_gone(pid: int) -> bool:
    """True when pid no longer runs (gone, or a zombie nobody has reaped yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_quietly(*pids: int) -> None:
    """Cleanup for processes a failing test may have left outside our tree."""
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()


def assert_one_line_error(out: subprocess.CompletedProcess[str], prog: str, text: str) -> None:
    """A refused command: exit 2, nothing on stdout, one clear line on stderr."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert out.stdout == ""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"{prog}: error: "), out.stderr
    assert text in lines[0], out.stderr


def stop_clean(runner: RunnerProcess, timeout: float = 30.0) -> None:
    """SIGTERM a runner and check it left cleanly."""
    code = runner.stop(timeout)
    err = runner.stderr()
    assert code == 0, f"runner exited with {code}: {err}"
    assert "Traceback" not in err, err


def ledger_lines(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        job_id, attempt = line.split(" ")
        out.append((job_id, int(attempt)))
    return out


def heartbeat_jobs(env: SpoolEnv) -> list[dict[str, Any]]:
    """Jobs listed in every runner heartbeat file right now."""
    jobs: list[dict[str, Any]] = []
    d = env.spool / "runners"
    if not d.exists():
        return jobs
    for name in os.listdir(d):
        if name.endswith(".json") and not name.startswith("."):
            try:
                data = json.loads((d / name).read_text())
            except (OSError, ValueError):
                continue
            jobs += data.get("jobs", [])
    return jobs
