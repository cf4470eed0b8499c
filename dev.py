#!/usr/bin/env python3
"""Bootstrap and run jobspool from a fresh clone with nothing but Python 3.11+.

    python3 dev.py up        initialise ./spool, then runner + dashboard (prints the URL)
    python3 dev.py test      the whole test suite (installs what it needs)
    python3 dev.py lint      ruff and mypy
    python3 dev.py bench     the benchmarks in bench/

The first call creates .venv/ and installs the project: `up` only what
running needs, the other commands the dev extras too (tests, linters);
later calls reinstall only when pyproject.toml or the list of modules changed. The tests need
Chromium, bindfs and FUSE: on Debian/Ubuntu as root they are installed with
apt-get.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".jobspool-installed"


def _run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def _run_quietly(cmd: list[str]) -> None:
    """Run a packaging step; show its output only if it fails (setuptools and
    pip print pages of notices that say nothing to someone starting the demo)."""
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout.decode(errors="replace"))
        sys.exit(f"dev.py: {' '.join(cmd[2:5])} failed (exit {done.returncode})")


# "strict" links the sources into a tree under build/ laid out as installed
# (runner/ as jobspool/, dashboard/ as jobspool/dashboard/) and puts that tree
# on sys.path with a plain .pth line. The default mode installs an import hook
# instead, which every interpreter start runs (pathlib, re, urllib...): ~2 MB
# in each process, the fork server included, and a bigger fork server makes
# every attempt slower. Edits show at once; a new module needs a reinstall,
# which the stamp below triggers (it covers the list of source files).
INSTALL = ["install", "-q", "--config-settings", "editable_mode=strict", "-e"]
PACKAGES = ("runner", "dashboard")
# Running needs only the project's dependencies; the tests, lint and
# benchmarks need the dev extra too (pytest, mypy, ruff, playwright, juicefs).
RUN, DEV = "run", "dev"


def _sources() -> bytes:
    names = sorted(str(p.relative_to(ROOT)) for d in PACKAGES for p in (ROOT / d).rglob("*"))
    return "\n".join(n for n in names if "__pycache__" not in n).encode()


def ensure_env(need: str) -> None:
    """Install what ``need`` (RUN or DEV) asks for, unless it is there already:
    a DEV install serves RUN too. Concurrent calls (two test runs in one
    clone) take turns: two pip installs into one venv would break it."""
    VENV.mkdir(exist_ok=True)
    with open(VENV.parent / ".venv.lock", "a") as lock:
        if os.name != "nt":
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        _ensure_env(need)


def _ensure_env(need: str) -> None:
    spec = (ROOT / "pyproject.toml").read_bytes() + " ".join(INSTALL).encode() + _sources()
    digest = hashlib.sha256(spec).hexdigest()
    have = STAMP.read_text().split() if STAMP.exists() and PY.exists() else []
    if have and have[0] == digest and (need in have[1:] or DEV in have[1:]):
        return
    if not PY.exists():
        _run_quietly([sys.executable, "-m", "venv", "--clear", str(VENV)])
    what = "jobspool and its dev tools" if need == DEV else "jobspool"
    print(
        f"dev.py: installing {what} into .venv (once; again after pyproject.toml changes)",
        file=sys.stderr,
        flush=True,
    )
    _run_quietly([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    target = f"{ROOT}[dev]" if need == DEV else str(ROOT)
    _run_quietly([str(PY), "-m", "pip", *INSTALL, target])
    STAMP.write_text(f"{digest} {need}")


def compile_sources() -> None:
    """Write the bytecode caches of the project's own modules.

    Python reads them even where it may not write them (PYTHONDONTWRITEBYTECODE),
    and each runner, fork server and CLI then starts ~0.1 s sooner. A source
    edited later just makes its cache stale, and Python compiles it as before.
    """
    dirs = [d for d in ("jobs", "bench") if (ROOT / d).is_dir()]
    # The engine is imported from the install's tree of links (build/...),
    # whose __pycache__ is not the sources' own: compile it where it is
    # imported from, or every process compiles the engine at start.
    installed = [str(p) for p in (ROOT / "build").glob("__editable__.*/jobspool")]
    # Best effort and silent: a job module that does not compile is reported
    # where it matters, by the attempt that imports it.
    subprocess.call([str(PY), "-m", "compileall", "-qq", *dirs, *installed], cwd=ROOT)


def init_dev_spool(rest: list[str]) -> int:
    """Make the project's own spool/ a spool, explicitly (`jobspool init`).

    Runners and the dashboard refuse a directory without the spool's marker
    (an unmounted network path must not become an empty queue), and the
    clone's spool/ exists from the start (git keeps it), so `up` would
    refuse it. Init says what it did and changes nothing the second time.
    Another spool (--spool, --config) is the user's to initialise.
    """
    elsewhere = ("JOBSPOOL_SPOOL", "JOBSPOOL_CONFIG")
    if any(arg.split("=")[0] in ("--spool", "--config") for arg in rest) or any(
        var in os.environ for var in elsewhere
    ):
        return 0
    config = str(ROOT / "allowed_jobs.yaml")
    return subprocess.call([str(BIN / "jobspool"), "init", "--config", config])


# What the test suite needs from the system: the browser tests drive
# Chromium, the multi-host tests mount the spool twice with bindfs and with
# JuiceFS (its client comes with the dev extra; FUSE's mount helper is
# fusermount3, or the older fusermount that bindfs may bring along).
SYSTEM_TOOLS = {
    "chromium": "chromium",
    "bindfs": "bindfs",
    "fusermount3|fusermount": "fuse3",
    "systemd-analyze": "systemd",  # checks the units `jobspool init --systemd` writes
}


def _have(tool: str) -> bool:
    return any(shutil.which(name) for name in tool.split("|"))


def ensure_system_tools() -> None:
    missing = [pkg for tool, pkg in SYSTEM_TOOLS.items() if not _have(tool)]
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt and hasattr(os, "geteuid") and os.geteuid() == 0:
        print(f"dev.py: installing {' '.join(missing)} for the tests", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        _run([apt, "update", "-qq"], env=env)
        _run([apt, "install", "-y", "-qq", *missing], env=env)
    still = [tool for tool in SYSTEM_TOOLS if not _have(tool)]
    if still:
        sys.exit(f"dev.py: the tests need {', '.join(still)}; install the Debian packages")


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file must run on older Pythons to say so
        print("jobspool needs Python 3.11 or newer", file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    ensure_env(RUN if command == "up" else DEV)
    compile_sources()
    if command == "up":
        os.chdir(ROOT)
        code = init_dev_spool(rest)
        if code:
            return code
        # Become the command, so Ctrl-C and SIGTERM reach it directly.
        os.execv(str(BIN / "jobspool"), [str(BIN / "jobspool"), "up", *rest])
    if command == "test":
        ensure_system_tools()
        os.chdir(ROOT)
        os.execv(str(PY), [str(PY), "-m", "pytest", *rest])
    if command == "lint":
        steps = [
            [str(PY), "-m", "ruff", "check", "."],
            [str(PY), "-m", "ruff", "format", "--check", "."],
            [str(PY), "-m", "mypy"],
        ]
        return max(subprocess.call(step, cwd=ROOT) for step in steps)
    if command == "bench":
        scripts = sorted((ROOT / "bench").glob("bench_*.py"))
        return max(
            (subprocess.call([str(PY), str(s), *rest], cwd=ROOT) for s in scripts), default=0
        )
    print(f"dev.py: unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
