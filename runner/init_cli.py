"""The ``jobspool init`` command: a new project, a spool, systemd units.

One command, three uses, told apart by what is given, never guessed:

* ``--spool PATH`` or ``--config FILE``: make that config's spool (or PATH)
  a spool, or check the layout of one; repeatable (``jobspool.initspool``);
* ``DIR`` (default ``.``) holding an ``allowed_jobs.yaml``: the same, for
  that project's spool;
* ``DIR`` without one: lay out a new project there (``jobspool.scaffold``)
  and make its spool;
* ``--systemd``, with either of the last two: write the deployment units.

A refusal writes nothing (every target is checked first), and nothing that
exists is overwritten.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import shlex
import sys
from pathlib import Path
from typing import Any

from jobspool import access, initspool, scaffold
from jobspool.config import CONFIG_NAME, Config, load_config
from jobspool.errors import JobspoolError
from jobspool.sentinel import marker_path


class InitUsageError(JobspoolError):
    """Arguments to init that contradict each other."""


def register(sub: Any) -> None:
    ini = sub.add_parser(
        "init",
        help="start a project, make a spool, or write systemd units",
        description="In DIR (default: here) without allowed_jobs.yaml: lay out a new project "
        "(allowed_jobs.yaml, jobs/ with an example job, spool/). With one: make its spool "
        "a spool, or check its layout. --spool/--config: make that spool. Never overwrites; "
        "safe to run again.",
    )
    ini.add_argument("project_dir", nargs="?", metavar="DIR", help="project directory")
    ini.add_argument("--config", help="allowed_jobs.yaml whose spool to make (no project)")
    ini.add_argument("--spool", help="spool directory to make (no project)")
    ini.add_argument(
        "--group", help="the producers' group: tmp/ and pending/ 2770, everything else 0750"
    )
    ini.add_argument(
        "--systemd",
        action="store_true",
        help="also write deploy/systemd/*.service and deploy/jobspool.env for the project",
    )
    ini.add_argument("--user", help="the user the systemd units run as (default: you; never root)")
    ini.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    if args.spool or args.config:
        if args.project_dir or args.systemd:
            raise InitUsageError(
                "--spool/--config make a spool only; give a project DIR (and --systemd) "
                "without them"
            )
        spool = str(Path(args.spool).absolute()) if args.spool else None
        _make_spool(load_config(args.config, {"spool": spool}, required=False), args.group)
        return 0
    project = Path(args.project_dir or ".").absolute()
    if os.path.lexists(marker_path(project)):
        raise InitUsageError(
            f"{project} is a spool, not a project: `jobspool init --spool {project}` "
            "checks its layout"
        )
    return _init_project(project, args)


def _init_project(project: Path, args: argparse.Namespace) -> int:
    config_file = project / CONFIG_NAME
    new_files = [] if os.path.lexists(config_file) else scaffold.project_files(project)
    user = _unit_user(args.user) if args.systemd else None
    units_at = [
        project / scaffold.UNIT_DIR / n for n in (scaffold.RUNNER_UNIT, scaffold.DASHBOARD_UNIT)
    ]
    units_at.append(project / "deploy" / scaffold.ENV_FILE)
    scaffold.refuse_existing(new_files, *(units_at if user else []))
    scaffold.write_all(new_files)
    if new_files:
        names = ", ".join(str(f.path.relative_to(project)) for f in new_files)
        print(f"project {project}: wrote {names}")
    cfg = load_config(config_file, {}, use_env=False)
    _make_spool(cfg, args.group)
    if user:
        _write_units(project, cfg, user)
    elif new_files:
        where = shlex.quote(str(project))
        print(
            "next: start the runner and the dashboard, then queue a job from another terminal:\n"
            f"  cd {where} && jobspool up\n"
            f"  cd {where} && runjob ExampleJob greet world"
        )
    return 0


def _make_spool(cfg: Config, group: str | None) -> None:
    done = initspool.init_spool(
        cfg.spool_dir, log_dir=cfg.log_dir, group=group, durable=cfg.settings.durable
    )
    state = "initialised" if done.created else "already initialised; layout checked"
    print(f"spool {done.root}: {state} (format {done.marker.format})")
    if done.group:
        print(
            f"modes: tmp/ and pending/ 2770 for group {done.group} (producers write there); "
            "everything else 0750 (the runner's user only)"
        )
        if access.running_as_root():
            print(
                f"jobspool: warning: root owns {done.root} now; give it to the user the runner "
                f"will run as (never root): chown -R USER {done.root}",
                file=sys.stderr,
            )


def _unit_user(name: str | None) -> pwd.struct_passwd:
    """The account the units run as: named, else the caller; never root."""
    try:
        entry = pwd.getpwnam(name) if name else pwd.getpwuid(os.getuid())
    except KeyError:
        raise InitUsageError(f"there is no user named {name!r}") from None
    if entry.pw_uid == 0:
        raise InitUsageError(
            "the units would run jobs as root: pass --user NAME, the account the runner "
            "and the dashboard should run as"
        )
    return entry


def _write_units(project: Path, cfg: Config, user: pwd.struct_passwd) -> None:
    assert cfg.path is not None  # loaded from the project's own file
    dep = scaffold.Deployment(
        project=project,
        config=cfg.path,
        user=user.pw_name,
        group=grp.getgrgid(user.pw_gid).gr_name,
        grace_seconds=cfg.settings.grace_seconds,
        executable=scaffold.jobspool_executable(),
    )
    files = scaffold.unit_files(dep)
    scaffold.write_all(files)
    for planned in files:
        print(f"wrote {planned.path}")
    print(
        f"the runner and the dashboard will run as {dep.user}: it must own {cfg.spool_dir} "
        f"(chown -R {dep.user} {shlex.quote(str(cfg.spool_dir))})\n"
        f"install them with:\n  {scaffold.install_hint(dep)}"
    )
