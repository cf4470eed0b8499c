"""`jobspool init DIR`: from an empty directory to a working project, and to
systemd units that start a runner which drains and stops as systemd would.

Everything runs as a new user would: the installed commands, from the
project directory, with no JOBSPOOL_* variables set.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobspool.sentinel import MARKER
from tests.conftest import wait_until
from tests.support.spoolkit import assert_one_line_error

URL = re.compile(r"http://127\.0\.0\.1:(\d+)/")
PROJECT_FILES = ["allowed_jobs.yaml", "jobs/__init__.py", "jobs/example.py"]


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("JOBSPOOL_")}


def _run(cwd: Path, *args: str, prog: str = "jobspool") -> subprocess.CompletedProcess[str]:
    module = "jobspool.cli" if prog == "jobspool" else "jobspool.runjob"
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        check=False,
        cwd=cwd,
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "spool" not in p.relative_to(root).parts and "__pycache__" not in p.parts
    }


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_init_lays_out_a_project_that_runs_its_example(workdir: Path) -> None:
    out = _run(workdir, "init", "myapp")
    assert out.returncode == 0, out.stderr
    project = workdir / "myapp"
    assert sorted(_files(project)) == PROJECT_FILES
    assert (project / "spool" / MARKER).is_file()
    where = shlex.quote(str(project))
    assert out.stdout.splitlines()[-2:] == [
        f"  cd {where} && jobspool up",
        f"  cd {where} && runjob ExampleJob greet world",
    ]

    check = _run(project, "check")
    assert check.returncode == 0, check.stderr
    assert "ExampleJob (jobs.ExampleJob)\n  greet(name: str) -> str" in check.stdout

    log = workdir / "up.log"
    with open(log, "wb") as sink:
        up = subprocess.Popen(
            [sys.executable, "-m", "jobspool.cli", "up", "--port", "0"],
            cwd=project,
            env=_environ(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: URL.search(log.read_text()), timeout=30, what="the dashboard URL")
        queued = _run(project, "ExampleJob", "greet", "world", prog="runjob")
        assert queued.returncode == 0, queued.stderr
        job_id = queued.stdout.strip()
        wait_until(
            lambda: _run(project, "show", job_id).stdout.startswith(
                f"id:        {job_id}\nstatus:    completed"
            ),
            timeout=30,
            what="the example job to complete",
        )
        assert 'result:    "Hello, world!"' in _run(project, "show", job_id).stdout
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0, log.read_text()


def test_init_overwrites_nothing_and_writes_nothing_when_refused(workdir: Path) -> None:
    project = workdir / "myapp"
    (project / "jobs").mkdir(parents=True)
    (project / "jobs" / "example.py").write_text("# mine\n")
    out = _run(workdir, "init", "myapp")
    assert_one_line_error(out, "jobspool", f"{project / 'jobs' / 'example.py'} already exists")
    assert "init never overwrites" in out.stderr
    assert _files(project) == {"jobs/example.py": b"# mine\n"}
    assert not (project / "spool").exists()


def test_init_on_an_existing_project_only_checks_its_spool(workdir: Path) -> None:
    assert _run(workdir, "init", "myapp").returncode == 0
    project = workdir / "myapp"
    (project / "jobs" / "example.py").write_text("# edited\n")
    before = _files(project)
    (project / "spool" / "running").rmdir()
    again = _run(project, "init")
    assert again.returncode == 0, again.stderr
    assert (
        again.stdout
        == f"spool {project / 'spool'}: already initialised; layout checked (format 1)\n"
    )
    assert _files(project) == before
    assert (project / "spool" / "running").is_dir()


def test_init_tells_a_spool_from_a_project(workdir: Path) -> None:
    assert _run(workdir, "init", "--spool", "queue").returncode == 0
    out = _run(workdir, "init", "queue")
    assert_one_line_error(out, "jobspool", "is a spool, not a project: `jobspool init --spool ")
    both = _run(workdir, "init", "myapp", "--spool", "queue")
    assert_one_line_error(both, "jobspool", "--spool/--config make a spool only")
    assert not (workdir / "myapp").exists()


# ---------------------------------------------------------------- systemd


def _unit(path: Path) -> dict[str, str]:
    keys: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys[key] = value
    return keys


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs if not k.startswith("#")}


def test_systemd_units_refuse_root_and_name_a_real_account(workdir: Path) -> None:
    if os.getuid() == 0:
        out = _run(workdir, "init", "myapp", "--systemd")
        assert_one_line_error(out, "jobspool", "the units would run jobs as root: pass --user")
        assert not (workdir / "myapp").exists()
    out = _run(workdir, "init", "myapp", "--systemd", "--user", "no-such-user-js")
    assert_one_line_error(out, "jobspool", "there is no user named 'no-such-user-js'")
    assert not (workdir / "myapp").exists()


def _systemd_init(workdir: Path) -> Path:
    out = _run(workdir, "init", "myapp", "--systemd", "--user", "nobody")
    assert out.returncode == 0, out.stderr
    assert "sudo systemctl enable --now jobspool-runner jobspool-dashboard" in out.stdout
    return workdir / "myapp"


def test_systemd_units_pass_systemd_analyze_and_keep_the_token_private(workdir: Path) -> None:
    project = _systemd_init(workdir)
    units = project / "deploy" / "systemd"
    runner, dashboard = units / "jobspool-runner.service", units / "jobspool-dashboard.service"
    env_file = project / "deploy" / "jobspool.env"
    assert stat.S_IMODE(os.lstat(env_file).st_mode) == 0o600
    settings = _env_file(env_file)
    assert settings["JOBSPOOL_CONFIG"] == str(project / "allowed_jobs.yaml")
    assert len(settings["JOBSPOOL_DASHBOARD_TOKEN"]) >= 16
    for unit in (runner, dashboard):
        keys = _unit(unit)
        assert keys["KillMode"] == "mixed" and keys["Restart"] == "on-failure"
        assert keys["User"] == "nobody" and keys["EnvironmentFile"] == str(env_file)
        assert float(keys["TimeoutStopSec"]) > 10  # the project's grace_seconds
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd) is needed"
    done = subprocess.run(
        [analyze, "verify", str(runner), str(dashboard)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Its only remark is about the account the test names (a real
    # deployment names its own): any other line is a mistake in the units.
    remarks = [ln for ln in done.stderr.splitlines() if "Special user nobody" not in ln]
    assert done.returncode == 0 and remarks == [], done.stderr

    again = _run(workdir, "init", "myapp", "--systemd", "--user", "nobody")
    assert_one_line_error(again, "jobspool", "already exist")
    assert _env_file(env_file) == settings


def test_the_runner_unit_command_drains_and_stops_within_its_timeout(workdir: Path) -> None:
    """Start what ExecStart says, as systemd would (its directory, its
    environment file), queue the example, stop it with KillSignal."""
    project = _systemd_init(workdir)
    keys = _unit(project / "deploy" / "systemd" / "jobspool-runner.service")
    env = {**_environ(), **_env_file(Path(keys["EnvironmentFile"]))}
    with subprocess.Popen(
        [*shlex.split(keys["ExecStart"]), "--quiet"],
        cwd=keys["WorkingDirectory"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as runner:
        try:
            queued = _run(project, "ExampleJob", "greet", "systemd", prog="runjob")
            assert queued.returncode == 0, queued.stderr
            job = queued.stdout.strip()
            wait_until(
                (project / "spool" / "completed" / f"{job}.json").exists,
                timeout=30,
                what="the job to complete under the unit's command",
            )
        finally:
            runner.send_signal(getattr(signal, keys["KillSignal"]))
            _, err = runner.communicate(timeout=float(keys["TimeoutStopSec"]))
    assert runner.returncode == 0, err
