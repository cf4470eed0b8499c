"""The installed form: a wheel in a fresh virtualenv, used by an application of its own.

The wheel is built from a copy of the repository (the checkout's build/
holds the development install, and a build writes there), installed with
its dependencies into a new virtualenv, and never sees the repository
again: every command runs from the application's directory with the
virtualenv's executables and no PYTHONPATH.

The application is the one that broke older packagings: it has its own
``runner.py``, ``dashboard.py`` and ``jobs/`` package, and its job imports
from ``jobspool``. Its ``runner.py`` and ``dashboard.py`` refuse to load, and
leave a note, in any process but the application's own script, so an engine
that imports them by their bare names fails loudly.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]
# What a build does not need and a fresh clone does not have: at the top
# (a package may well hold a module folder named spool or build) ...
NOT_BUILT_FROM_TOP = {".git", ".venv", "build", "dist", "spool", "jobspool.egg-info"}
# ... and anywhere.
NOT_BUILT_FROM = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}


def _not_built_from(folder: str, names: list[str]) -> set[str]:
    top = NOT_BUILT_FROM_TOP if Path(folder) == REPO else set()
    return {n for n in names if n in top or n in NOT_BUILT_FROM}


URL = re.compile(r"http://127\.0\.0\.1:(\d+)/")
APP_SCRIPT = "app_script.py"
SHADOW_NOTE = "SHADOWED"

CONFIG = """\
spool: var/spool          # inside the application, relative to this file
workers: 2
poll_seconds: 0.5
heartbeat_seconds: 0.5
grace_seconds: 5
retry: {max_attempts: 2, delay_seconds: 0.2, jitter: 0}
allowed_jobs:
  Greeter:                # class jobs.Greeter: the application's own jobs/
    allowed_methods: [greet]
    timeout_seconds: 60
"""

# The application's modules that share a name with the repository's folders.
SHADOW_MODULE = """\
import os
import sys

OWNER = "the application"
if os.path.basename(sys.argv[0]) != {script!r}:
    note = os.path.join(os.path.dirname(os.path.abspath(__file__)), {note!r})
    with open(note, "a") as fh:
        fh.write(f"{{__name__}} imported by {{sys.argv!r}}\\n")
    raise RuntimeError(f"the application's {{__name__}}.py was imported by {{sys.argv!r}}")
"""

JOBS_INIT = """\
from jobs.greeter import Greeter

OWNER = "the application"
__all__ = ["Greeter"]
"""

JOB_MODULE = """\
import jobspool
from jobspool import current_job, report_progress


class Greeter:
    def greet(self, name: str, times: int = 1) -> dict[str, object]:
        import jobs

        ctx = current_job()
        report_progress(1.0, "greeted")
        return {
            "greeting": " ".join([f"hello {name}"] * times),
            "job_id": ctx.id,
            "attempt": ctx.attempt,
            "job_module": __file__,
            "jobs_owner": jobs.OWNER,
            "engine": jobspool.__file__,
        }
"""

SCRIPT = """\
import json

import jobspool
from jobspool import (
    ConfigError,
    Conflict,
    InvalidJobFile,
    InvalidParams,
    JobNotFound,
    JobRejected,
    JobspoolError,
    NotAllowed,
    Retry,
    SpoolFull,
    WaitTimeout,
    current_job,
    get_job,
    report_progress,
    run_background_job,
    wait_for_job,
)

import dashboard
import jobs
import runner
from jobs import Greeter

errors = [ConfigError, Conflict, InvalidJobFile, InvalidParams, JobNotFound, JobRejected,
          NotAllowed, Retry, SpoolFull, WaitTimeout]
out = {
    "engine": jobspool.__file__,
    "public": sorted(n for n in jobspool.__all__ if getattr(jobspool, n) is not None),
    "callables": all(callable(f) for f in (current_job, report_progress, get_job)),
    "errors": {e.__name__: issubclass(e, Exception) for e in errors},
    "jobspool_errors": sorted(e.__name__ for e in errors if issubclass(e, JobspoolError)),
    "own": {m.__name__: [m.OWNER, m.__file__] for m in (runner, dashboard, jobs)},
}
try:
    run_background_job("Greeter", "shout", ["nobody"])
except NotAllowed as exc:
    out["refused"] = str(exc)
by_class = run_background_job(Greeter, "greet", ["class"])
by_name = run_background_job("Greeter", "greet", {"name": "name", "times": "2"})
for key, job_id in (("by_class", by_class), ("by_name", by_name)):
    view = wait_for_job(job_id, timeout=60)
    out[key] = {"id": job_id, "status": view.status, "result": view.record.result}
out["get_job"] = get_job(by_class).status
print(json.dumps(out))
"""


def venv_environ(venv: Path) -> dict[str, str]:
    """The shell of someone who activated the virtualenv: no repository anywhere."""
    skip = ("JOBSPOOL_", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return env


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def python(self) -> str:
        return self.exe("python")

    def exe(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def environ(self) -> dict[str, str]:
        return venv_environ(self.venv)


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (
        f"{done.args} exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("install")
    source, wheels, venv = base / "source", base / "wheels", base / "venv"
    shutil.copytree(REPO, source, ignore=_not_built_from, symlinks=True)
    env = venv_environ(venv)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels)]
    _ok(_run([*build, str(source)], base, env))
    (wheel,) = wheels.glob("jobspool-*.whl")
    _ok(_run([sys.executable, "-m", "venv", str(venv)], base, env))
    result = Installed(wheel=wheel, venv=venv)
    _ok(_run([result.python, "-m", "pip", "install", "-q", str(wheel)], base, env))
    return result


@dataclass
class App:
    root: Path
    env: dict[str, str]
    installed: Installed

    @property
    def spool(self) -> Path:
        return self.root / "var" / "spool"

    def run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _run(list(cmd), self.root, self.env, timeout)

    def jobspool(self, *args: str) -> str:
        return _ok(self.run(self.installed.exe("jobspool"), *args))

    def show(self, job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.jobspool("show", job_id, "--json"))
        return data

    def assert_ran_the_applications_job(self, result: dict[str, Any], name: str) -> None:
        assert result["greeting"] == f"hello {name}"
        assert result["attempt"] == 1
        assert Path(result["job_module"]) == self.root / "jobs" / "greeter.py"
        assert result["jobs_owner"] == "the application"
        assert Path(result["engine"]).is_relative_to(self.installed.venv)


@pytest.fixture
def app(installed: Installed, tmp_path: Path) -> Iterator[App]:
    root = tmp_path / "app"
    (root / "jobs").mkdir(parents=True)
    (root / "allowed_jobs.yaml").write_text(CONFIG)
    shadow = SHADOW_MODULE.format(script=APP_SCRIPT, note=SHADOW_NOTE)
    (root / "runner.py").write_text(shadow)
    (root / "dashboard.py").write_text(shadow)
    (root / "jobs" / "__init__.py").write_text(JOBS_INIT)
    (root / "jobs" / "greeter.py").write_text(JOB_MODULE)
    (root / APP_SCRIPT).write_text(SCRIPT)
    made = App(root=root, env=installed.environ(), installed=installed)
    made.jobspool("init")  # once, as the README says: every command refuses a spool without it
    yield made
    note = root / SHADOW_NOTE
    assert not note.exists(), f"the engine imported the application's modules: {note.read_text()}"


@contextmanager
def background(app: App, out: Path, *cmd: str) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running command whose stdout goes to a file; killed if the test fails."""
    with open(out, "wb") as stdout, open(out.with_suffix(".stderr"), "wb") as stderr:
        proc = subprocess.Popen(list(cmd), cwd=app.root, env=app.env, stdout=stdout, stderr=stderr)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)


def _stderr_of(out: Path) -> str:
    return out.with_suffix(".stderr").read_text(errors="replace")


def _stop(proc: subprocess.Popen[bytes], out: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    assert code == 0, f"exit {code} after SIGTERM; stderr: {_stderr_of(out)}"


def fetch(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def _port(proc: subprocess.Popen[bytes], out: Path) -> int:
    def announced() -> int:
        assert proc.poll() is None, f"exited {proc.returncode}; stderr: {_stderr_of(out)}"
        found = URL.search(out.read_text(errors="replace"))
        return int(found.group(1)) if found else 0

    return wait_until(announced, 30, "the dashboard to print its URL")


# ---------------------------------------------------------------- the wheel


def test_the_wheel_holds_only_the_jobspool_package(installed: Installed, tmp_path: Path) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        tops = {n.split("/")[0] for n in names}
        (meta,) = (t for t in tops if t.endswith(".dist-info"))
        top_level = wheel.read(f"{meta}/top_level.txt").decode().split()
        entry_points = wheel.read(f"{meta}/entry_points.txt").decode()
    assert tops == {"jobspool", meta}
    assert top_level == ["jobspool"]
    assert "jobspool/dashboard/views/layout.tpl" in names
    assert "jobspool/dashboard/static/app.js" in names
    assert "jobspool/py.typed" in names
    assert "jobspool = jobspool.cli:main" in entry_points
    assert "runjob = jobspool.cli:runjob_main" in entry_points
    assert "[jobspool.commands]" in entry_points

    # Nothing else in the environment answers to the repository's folder names.
    probe = (
        "import importlib.util, json;"
        "print(json.dumps({n: importlib.util.find_spec(n) is not None"
        " for n in ('runner', 'dashboard', 'jobs', 'jobspool', 'jobspool.dashboard')}))"
    )
    done = _run([installed.python, "-c", probe], tmp_path, installed.environ())
    assert json.loads(_ok(done)) == {
        "runner": False,
        "dashboard": False,
        "jobs": False,
        "jobspool": True,
        "jobspool.dashboard": True,
    }


# ---------------------------------------------------------------- commands


def test_runjob_and_the_jobspool_commands_run_the_applications_job(app: App) -> None:
    runjob = app.installed.exe("runjob")
    job_id = _ok(app.run(runjob, "Greeter", "greet", "console")).strip()
    assert (app.spool / "pending" / f"{job_id}.json").exists()

    refused = app.run(runjob, "Greeter", "shout", "x")
    assert refused.returncode == 2
    assert refused.stderr.startswith("runjob: error: ") and refused.stderr.count("\n") == 1
    assert "Traceback" not in refused.stderr

    _ok(app.run(app.installed.exe("jobspool"), "runner", "--burst"))
    shown = app.show(job_id)
    assert shown["status"] == "completed"
    app.assert_ran_the_applications_job(shown["result"], "console")

    status = json.loads(app.jobspool("status", "--json"))
    assert Path(status["spool"]) == app.spool
    assert status["counts"]["completed"] == 1 and status["counts"]["pending"] == 0
    assert "completed" in app.jobspool("status")
    listed = json.loads(app.jobspool("list", "--json"))
    assert [(j["id"], j["status"]) for j in listed] == [(job_id, "completed")]
    assert job_id in app.jobspool("list")
    assert "status:    completed" in app.jobspool("show", job_id)


def test_the_module_form_runs_from_the_applications_directory(app: App) -> None:
    # `python -m` puts the working directory first on sys.path: the
    # application's runner.py and dashboard.py are importable by those names.
    python = app.installed.python
    helped = _ok(app.run(python, "-m", "jobspool", "--help"))
    assert "runner" in helped and "up" in helped and "dashboard" in helped
    job_id = _ok(app.run(python, "-m", "jobspool", "submit", "Greeter", "greet", "module")).strip()
    listed = json.loads(_ok(app.run(python, "-m", "jobspool", "list", "--json")))
    assert [(j["id"], j["status"]) for j in listed] == [(job_id, "pending")]
    _ok(app.run(python, "-m", "jobspool", "runner", "--burst", "--quiet"))
    shown = json.loads(_ok(app.run(python, "-m", "jobspool", "show", job_id, "--json")))
    assert shown["status"] == "completed"
    app.assert_ran_the_applications_job(shown["result"], "module")


@pytest.mark.parametrize("command", ["up", "dashboard"])
def test_the_dashboard_commands_serve_and_stop_on_sigterm(
    app: App, tmp_path: Path, command: str
) -> None:
    job_id = _ok(app.run(app.installed.exe("runjob"), "Greeter", "greet", command)).strip()
    out = tmp_path / f"{command}.out"
    with background(app, out, app.installed.exe("jobspool"), command, "--port", "0") as proc:
        port = _port(proc, out)
        status, page = fetch(port, "/")
        assert status == 200 and b"Overview" in page
        status, css = fetch(port, "/static/app.css")
        assert status == 200 and css
        if command == "up":
            # The runner of `up` imports the application's job, not a demo.
            def finished() -> dict[str, Any]:
                code, body = fetch(port, f"/api/jobs/{job_id}")
                data: dict[str, Any] = json.loads(body) if code == 200 else {}
                return data if data.get("status") == "completed" else {}

            job = wait_until(finished, 30, f"`up` to run {job_id}")
            app.assert_ran_the_applications_job(job["result"], command)
        else:
            status, body = fetch(port, f"/api/jobs/{job_id}")
            assert status == 200 and json.loads(body)["status"] == "pending"
        _stop(proc, out)
    assert "stopped" in out.read_text()


# ---------------------------------------------------------------- the Python API


def test_the_applications_script_submits_and_waits_through_the_api(
    app: App, tmp_path: Path
) -> None:
    out = tmp_path / "runner.out"
    with background(app, out, app.installed.exe("jobspool"), "runner", "--quiet") as runner:
        done = app.run(app.installed.python, APP_SCRIPT)
        _stop(runner, out)
    report: dict[str, Any] = json.loads(_ok(done))

    assert Path(report["engine"]).is_relative_to(app.installed.venv)
    public = {
        "ConfigError",
        "Conflict",
        "InvalidJobFile",
        "InvalidParams",
        "JobNotFound",
        "JobRejected",
        "JobspoolError",
        "NotAllowed",
        "Retry",
        "SpoolFull",
        "WaitTimeout",
        "current_job",
        "get_job",
        "report_progress",
        "run_background_job",
        "wait_for_job",
    }
    assert public <= set(report["public"])
    assert report["callables"] is True
    assert all(report["errors"].values())
    assert {"NotAllowed", "InvalidParams", "ConfigError", "JobNotFound"} <= set(
        report["jobspool_errors"]
    )
    assert report["own"] == {
        "runner": ["the application", str(app.root / "runner.py")],
        "dashboard": ["the application", str(app.root / "dashboard.py")],
        "jobs": ["the application", str(app.root / "jobs" / "__init__.py")],
    }
    assert "shout" in report["refused"]
    assert report["by_class"]["status"] == "completed"
    app.assert_ran_the_applications_job(report["by_class"]["result"], "class")
    assert report["by_name"]["status"] == "completed"
    assert report["by_name"]["result"]["greeting"] == "hello name hello name"
    assert report["get_job"] == "completed"
