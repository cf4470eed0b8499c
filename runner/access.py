"""Who may write where in a spool: the directory modes of the threat model.

Producers, the members of the spool's group, write tmp/ and pending/ only;
everything else belongs to the runner's user (docs/SECURITY.md). This module
owns the modes ``jobspool init --group`` sets (:func:`apply_group`), the
audit of a spool's modes against that model (:func:`audit`, for ``jobspool
doctor`` and the runner), and the runner's warnings at start
(:func:`warn_at_start`).

Invariants:

1. Producer directories are group-writable with setgid (2770), so every file
   written there keeps the spool's group; every other directory (the root,
   running/, the terminal ones, corrupt/, control/, runners/, logs/) is
   0750: the group may read (status, list, show, wait_for_job) and never
   write.
2. The audit only looks (lstat, the group and user databases); it never
   changes a mode. A ``FAIL`` lets someone other than the runner's user
   write where only that user should; a ``WARN`` weakens the model without
   breaking it (anyone may submit; files that will not keep the group).
3. The runner never refuses a spool over modes (a filesystem without POSIX
   modes must still run): it says what is wrong, once per start.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from jobspool import logs
from jobspool.errors import SpoolError
from jobspool.spool import DIRS, Spool

PRODUCER_DIRS = ("tmp", "pending")
PRODUCER_MODE = 0o2770
RUNNER_MODE = 0o750
POSIX = os.name != "nt"

FAIL, WARN = "FAIL", "WARN"


@dataclass(frozen=True)
class Finding:
    level: str  # FAIL or WARN
    path: Path
    text: str


def producer_dirs(spool: Spool) -> list[Path]:
    return [spool.dir(d) for d in PRODUCER_DIRS]


def runner_dirs(spool: Spool) -> list[Path]:
    """The root and every directory only the runner's user may write."""
    own = [spool.dir(d) for d in DIRS if d not in PRODUCER_DIRS]
    return [spool.root, *own, spool.log_dir, spool.log_dir / "jobs"]


def resolve_group(name: str) -> int:
    """The id of a group given by name or number; SpoolError if there is none."""
    if not POSIX:
        raise SpoolError("--group needs a POSIX system (Linux, macOS, BSD)")
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise SpoolError(
            f"there is no group named {name!r}: create it (groupadd {name}) "
            "or name an existing group"
        ) from None


def apply_group(spool: Spool, gid: int, group: str) -> None:
    """Give the spool's directories to gid with the modes of invariant 1."""
    for path in runner_dirs(spool):
        _set(path, gid, RUNNER_MODE, group)
    for path in producer_dirs(spool):
        _set(path, gid, PRODUCER_MODE, group)


def _set(path: Path, gid: int, mode: int, group: str) -> None:
    try:
        os.chown(path, -1, gid, follow_symlinks=False)
        os.chmod(path, mode)
    except OSError as exc:
        raise SpoolError(
            f"cannot give {path} to group {group}: {exc.strerror}: run `jobspool init` as "
            f"the runner's user, a member of {group}"
        ) from None


# ------------------------------------------------------------------ audit


def audit(spool: Spool) -> list[Finding]:
    """What in the spool's modes breaks or weakens the model (invariant 2)."""
    if not POSIX:
        return []
    found: list[Finding] = []
    for path in runner_dirs(spool):
        found += _runner_only(spool, path)
    for path in producer_dirs(spool):
        found += _producer(spool, path)
    return found


def _lstat_dir(path: Path) -> os.stat_result | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None  # missing: the layout check says so
    return st if stat.S_ISDIR(st.st_mode) else None


def label(spool: Spool, path: Path) -> str:
    if path == spool.root:
        return f"{path}/"
    try:
        return f"{path.relative_to(spool.root)}/"
    except ValueError:
        return f"{path}/"


def _runner_only(spool: Spool, path: Path) -> list[Finding]:
    st = _lstat_dir(path)
    if st is None:
        return []
    mode = stat.S_IMODE(st.st_mode)
    where = label(spool, path)
    if mode & stat.S_IWOTH:
        text = f"any user can write {where} (mode {mode:04o}): chmod o-w,g-w {path}"
        return [Finding(FAIL, path, text)]
    if mode & stat.S_IWGRP and _shared_group(st.st_gid, st.st_uid):
        text = (
            f"group {_group_name(st.st_gid)} can write {where} (mode {mode:04o}); only the "
            f"runner's user may: chmod g-w {path}"
        )
        return [Finding(FAIL, path, text)]
    return []


def _producer(spool: Spool, path: Path) -> list[Finding]:
    st = _lstat_dir(path)
    if st is None:
        return []
    mode = stat.S_IMODE(st.st_mode)
    where = label(spool, path)
    if mode & stat.S_IWOTH:
        text = (
            f"any user can write {where} (mode {mode:04o}), so anyone may submit jobs: "
            "`jobspool init --spool SPOOL --group NAME` limits that to a group"
        )
        return [Finding(WARN, path, text)]
    if mode & stat.S_IWGRP and not mode & stat.S_ISGID:
        text = (
            f"{where} is group-writable without setgid (mode {mode:04o}), so files written "
            f"there do not keep the spool's group: chmod g+s {path}"
        )
        return [Finding(WARN, path, text)]
    return []


def _shared_group(gid: int, uid: int) -> bool:
    """Can the group hold anyone but the owner? A user's private group cannot."""
    import grp
    import pwd

    try:
        group, owner = grp.getgrgid(gid), pwd.getpwuid(uid)
    except KeyError:
        return True  # unknown to this host: assume the worst
    private = gid == owner.pw_gid and group.gr_name == owner.pw_name
    return not private or bool(set(group.gr_mem) - {owner.pw_name})


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# ------------------------------------------------------------------ the runner


def running_as_root() -> bool:
    return POSIX and os.geteuid() == 0


def warn_at_start(spool: Spool) -> None:
    """One log line each: started as root; modes that let others write (invariant 3)."""
    if running_as_root():
        logs.event(
            "runner_as_root",
            logs.WARNING,
            hint="job code runs as root too: run the runner as an unprivileged user "
            "that owns the spool (docs/SECURITY.md)",
        )
    unsafe = [f for f in audit(spool) if f.level == FAIL]
    if unsafe:
        logs.event(
            "spool_modes_unsafe",
            logs.WARNING,
            writable_by_others=", ".join(label(spool, f.path) for f in unsafe),
            hint="only the runner's user may write there: chmod go-w them "
            "(`jobspool doctor` says how)",
        )
