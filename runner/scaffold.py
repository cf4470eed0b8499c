"""``jobspool init DIR``: laying out a new project, and its systemd units.

Owns the files a new project starts from (a commented ``allowed_jobs.yaml``,
a ``jobs/`` package with one example job) and the deployment files
``jobspool init --systemd`` writes (a unit for the runner, one for the
dashboard, an environment file for their settings and the token). The
spool itself is made by :mod:`jobspool.initspool`, the one way a spool
comes to be.

Invariants:

1. Nothing that exists is overwritten, and a refusal writes nothing: every
   target is checked before the first file is written, and each file is
   then created exclusively, so a file that appears in between is refused
   too (and what this call wrote before it stays, complete).
2. Each file is written whole and durable (tmp, fsync, link) before the
   next: an interrupted init leaves complete files, never a half-written one.
3. The environment file holding the dashboard token is created 0600: the
   token is a password.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from jobspool.config import CONFIG_NAME
from jobspool.errors import JobspoolError
from jobspool.fsops import FileOps


class ScaffoldError(JobspoolError):
    """A project file that init would write exists already."""


PROJECT_CONFIG = """\
# jobspool configuration: which jobs may run, and how.
# Paths are relative to this file's directory. `jobspool check` imports every
# class below and prints its methods' signatures.

spool: spool            # the queue: a directory tree (made by `jobspool init`)
workers: 4              # attempts run at once per runner
timeout_seconds: 600    # default per-attempt timeout
grace_seconds: 10       # on SIGTERM, running attempts get this long to finish
retry:
  max_attempts: 3
  delay_seconds: 60     # first retry after a minute, then doubling
  backoff: exponential  # or fixed
  max_delay_seconds: 3600

allowed_jobs:
  # The name producers use (`runjob ExampleJob greet world`); its class is
  # jobs.ExampleJob unless a `class:` path says otherwise.
  ExampleJob:
    allowed_methods: [greet]
    timeout_seconds: 60
"""

JOBS_INIT = '''\
"""The project's job classes: a name in allowed_jobs.yaml maps to jobs.<Name>."""

from jobs.example import ExampleJob

__all__ = ["ExampleJob"]
'''

EXAMPLE_JOB = '''\
"""An example job: each allowed method runs in its own process, once per attempt.

Parameters come from the job file (JSON); annotate them, and a job whose
parameters do not fit the signature is rejected before it runs. What the
method returns is stored in the finished job's record; what it prints goes
to the job's log; an exception fails the attempt and is retried as
allowed_jobs.yaml says.
"""

from __future__ import annotations


class ExampleJob:
    def greet(self, name: str) -> str:
        message = f"Hello, {name}!"
        print(message)
        return message
'''


@dataclass(frozen=True)
class PlannedFile:
    path: Path
    text: str
    mode: int = 0o644


def project_files(root: Path) -> list[PlannedFile]:
    return [
        PlannedFile(root / CONFIG_NAME, PROJECT_CONFIG),
        PlannedFile(root / "jobs" / "__init__.py", JOBS_INIT),
        PlannedFile(root / "jobs" / "example.py", EXAMPLE_JOB),
    ]


def refuse_existing(files: list[PlannedFile], *also: Path) -> None:
    """Invariant 1: name every target that exists, before writing any."""
    taken = [str(p) for p in [*(f.path for f in files), *also] if os.path.lexists(p)]
    if taken:
        raise ScaffoldError(
            f"{', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}; "
            "init never overwrites: move them away or pick another directory"
        )


def write_all(files: list[PlannedFile]) -> None:
    refuse_existing(files)
    for planned in files:
        _write_new(planned)


def _write_new(planned: PlannedFile) -> None:
    """Invariant 2: whole and durable, and never over an existing name.

    Not ``FileOps.write_new``: the file must be created with its final mode
    (the environment file holds a token and is never readable by others)."""
    path = planned.path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, planned.mode)
    try:
        os.fchmod(fd, planned.mode)  # whatever the umask
        os.write(fd, planned.text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ScaffoldError(f"{path} appeared while init was writing; left as it is") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    FileOps().fsync_dir(path.parent)


# ------------------------------------------------------------------ systemd

ENV_FILE = "jobspool.env"
UNIT_DIR = Path("deploy") / "systemd"
RUNNER_UNIT = "jobspool-runner.service"
DASHBOARD_UNIT = "jobspool-dashboard.service"
# systemd's TimeoutStopSec must outlast the runner's SIGTERM grace: past it
# systemd sends SIGKILL to everything, and attempts that were finishing
# would be recorded as lost instead of handed back.
STOP_MARGIN_SECONDS = 15


@dataclass(frozen=True)
class Deployment:
    project: Path
    config: Path
    user: str
    group: str
    grace_seconds: float
    executable: str


def jobspool_executable() -> str:
    """The jobspool command of this installation, as an absolute path."""
    beside = Path(sys.executable).with_name("jobspool")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return f"{sys.executable} -m jobspool"


def _unit(description: str, dep: Deployment, command: str, after: str = "") -> str:
    stop = int(dep.grace_seconds) + STOP_MARGIN_SECONDS
    env_file = dep.project / "deploy" / ENV_FILE
    return f"""\
[Unit]
Description={description}
After=network-online.target local-fs.target remote-fs.target{after}
Wants=network-online.target

[Service]
Type=simple
User={dep.user}
Group={dep.group}
WorkingDirectory={_quote(str(dep.project))}
EnvironmentFile={_quote(str(env_file))}
ExecStart={dep.executable} {command}
# SIGTERM to the runner only; it hands its attempts back within the grace
# ({dep.grace_seconds:g} s), then systemd kills whatever is left of the group.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={stop}
Restart=on-failure
RestartSec=2
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
"""


def _quote(text: str) -> str:
    return f'"{text}"' if any(c.isspace() for c in text) else text


def unit_files(dep: Deployment) -> list[PlannedFile]:
    units = dep.project / UNIT_DIR
    config = shlex.quote(str(dep.config))
    runner = _unit("jobspool runner", dep, f"runner --config {config}")
    dashboard = _unit("jobspool dashboard", dep, f"dashboard --config {config}", " " + RUNNER_UNIT)
    token = secrets.token_urlsafe(24)
    env = (
        "# Read by the jobspool units (EnvironmentFile=). Keep it 0600: the token\n"
        "# is the dashboard's password.\n"
        f"JOBSPOOL_CONFIG={dep.config}\n"
        f"JOBSPOOL_DASHBOARD_TOKEN={token}\n"
    )
    return [
        PlannedFile(units / RUNNER_UNIT, runner),
        PlannedFile(units / DASHBOARD_UNIT, dashboard),
        PlannedFile(dep.project / "deploy" / ENV_FILE, env, 0o600),
    ]


def install_hint(dep: Deployment) -> str:
    units = dep.project / UNIT_DIR
    return (
        f"sudo cp {units / RUNNER_UNIT} {units / DASHBOARD_UNIT} /etc/systemd/system/ && "
        "sudo systemctl daemon-reload && "
        "sudo systemctl enable --now jobspool-runner jobspool-dashboard"
    )
