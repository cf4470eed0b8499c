"""Per-attempt resource limits, applied to the attempt's process before its job runs.

Owns how the limits of ``config.Limits`` (sent in the ``RunRequest`` as a
plain dict) become kernel limits on one attempt:

* ``memory_mb`` -> RLIMIT_AS (address space; an allocation past it raises
  MemoryError in the job);
* ``cpu_seconds`` -> RLIMIT_CPU (SIGXCPU at the limit, SIGKILL a second later
  if the job ignores it);
* ``open_files`` -> RLIMIT_NOFILE;
* ``output_bytes`` -> RLIMIT_FSIZE, counted from the job log's size when the
  attempt starts: no file the attempt writes (its log, where its stdout and
  stderr go, its report, anything else) grows by more than that, checked by
  the kernel at every write (SIGXFSZ);
* ``processes`` -> a ``pids`` cgroup of its own where the runner may make
  one (cgroup v1's pids hierarchy, or cgroup v2 where the runner's cgroup
  delegates the pids controller to its children): the attempt and
  everything it starts count, threads included. Elsewhere RLIMIT_NPROC,
  which the kernel counts over every process of the runner's user: the
  limit is set to that count now plus ``processes`` (root is exempt from
  it).

Every limit is set as both soft and hard limit, so the job cannot raise it
(unless it runs as root); core dumps are turned off, since a limit's signal
would otherwise dump the whole process. The fork server applies the limits
to a spare with ``prlimit`` before it hands the request over (the spare
cannot run the job before that), so no attempt pays for importing
``resource``; without ``prlimit`` the attempt sets its own.

Invariant: an attempt whose limits cannot all be applied does not run; the
caller reports it failed (:class:`LimitsNotApplied`).

The fork server imports this module only when a request carries limits.
"""

from __future__ import annotations

import os
import resource

PIDS_GROUP_PREFIX = "jobspool-"


class LimitsNotApplied(OSError):
    """A limit the attempt should run under could not be set."""


def _fsize_base(log_path: str) -> int:
    try:
        st = os.lstat(log_path)
    except OSError:
        return 0
    return st.st_size if st.st_mode & 0o170000 == 0o100000 else 0


def _user_tasks() -> int:
    """Processes and threads of this real user now: what RLIMIT_NPROC counts."""
    me, count = os.getuid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == me:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                continue
    return count


def rlimits(
    limits: dict[str, float], log_path: str, pids_group: bool
) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) for each limit to set."""
    out = [(resource.RLIMIT_CORE, 0, 0)]
    if "memory_mb" in limits:
        size = int(limits["memory_mb"]) << 20
        out.append((resource.RLIMIT_AS, size, size))
    if "cpu_seconds" in limits:
        seconds = -(-limits["cpu_seconds"] // 1)  # whole seconds, rounded up
        out.append((resource.RLIMIT_CPU, int(seconds), int(seconds) + 1))
    if "open_files" in limits:
        out.append((resource.RLIMIT_NOFILE, int(limits["open_files"]), int(limits["open_files"])))
    if "output_bytes" in limits:
        size = _fsize_base(log_path) + int(limits["output_bytes"])
        out.append((resource.RLIMIT_FSIZE, size, size))
    if "processes" in limits and not pids_group and os.getuid() != 0:
        count = _user_tasks() + int(limits["processes"])
        out.append((resource.RLIMIT_NPROC, count, count))
    return out


def apply(pid: int, limits: dict[str, float], log_path: str, pids_group: bool = False) -> None:
    """Set the limits on process pid (0: this process)."""
    for res, want_soft, want_hard in rlimits(limits, log_path, pids_group):
        try:
            soft, hard = want_soft, want_hard
            _, now_hard = resource.getrlimit(res)
            if now_hard != resource.RLIM_INFINITY:
                # Without privilege a hard limit can only go down.
                soft, hard = min(soft, now_hard), min(hard, now_hard)
            if pid:
                resource.prlimit(pid, res, (soft, hard))
            else:
                resource.setrlimit(res, (soft, hard))
        except (OSError, ValueError) as exc:
            raise LimitsNotApplied(f"cannot set resource limit {res}: {exc}") from None


can_apply_to_others = hasattr(resource, "prlimit")


# ---------------------------------------------------------------- pids cgroups


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read(1 << 16)


def _mounts() -> list[tuple[str, str, str, str]]:
    """(root, mount point, fs type, super options) of each mount."""
    out = []
    for line in _read_text("/proc/self/mountinfo").splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and len(fields) >= 5 and len(tail) >= 3:
            out.append((fields[3], fields[4], tail[0], tail[2]))
    return out


def _under(mount_root: str, mount_point: str, path: str) -> str:
    rel = os.path.relpath(path, mount_root) if path.startswith(mount_root) else path
    return os.path.normpath(os.path.join(mount_point, rel.lstrip("/")))


def pids_hierarchy() -> str | None:
    """A directory where this process may make child cgroups with a pids
    limit, or None. Same answer for the runner and its fork server (one cgroup)."""
    try:
        lines = _read_text("/proc/self/cgroup").splitlines()
        mounts = _mounts()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):  # cgroup v1
            for root, point, fstype, options in mounts:
                if fstype == "cgroup" and "pids" in options.split(","):
                    found = _under(root, point, path)
                    if os.access(found, os.W_OK):
                        return found
        elif controllers == "":  # cgroup v2
            for root, point, fstype, _ in mounts:
                if fstype == "cgroup2":
                    found = _under(root, point, path)
                    if _delegates_pids(found):
                        return found
    return None


def _delegates_pids(folder: str) -> bool:
    try:
        enabled = _read_text(os.path.join(folder, "cgroup.subtree_control")).split()
    except OSError:
        return False
    return "pids" in enabled and os.access(folder, os.W_OK)


def describe() -> str:
    """How a processes limit is enforced here, for the runner's start-up log."""
    found = pids_hierarchy()
    if found is not None:
        return f"pids cgroup under {found}"
    return "RLIMIT_NPROC (counts every process of the runner's user; root is exempt)"


class PidsGroups:
    """One pids cgroup per attempt, in a folder of this fork server's own."""

    def __init__(self, hierarchy: str) -> None:
        self.folder = os.path.join(hierarchy, f"{PIDS_GROUP_PREFIX}{os.getpid()}")
        self.groups: dict[int, str] = {}  # attempt pid -> its cgroup
        self.empty_later: list[str] = []

    def confine(self, pid: int, processes: int) -> None:
        group = os.path.join(self.folder, f"attempt-{pid}")
        try:
            os.makedirs(group, exist_ok=True)
            with open(os.path.join(group, "pids.max"), "w") as fh:
                fh.write(str(processes))
            with open(os.path.join(group, "cgroup.procs"), "w") as fh:
                fh.write(str(pid))
        except OSError as exc:
            raise LimitsNotApplied(f"cannot make a pids cgroup for the attempt: {exc}") from None
        self.groups[pid] = group

    def members(self, pid: int) -> list[int]:
        group = self.groups.get(pid)
        if group is None:
            return []
        try:
            return [int(p) for p in _read_text(os.path.join(group, "cgroup.procs")).split()]
        except (OSError, ValueError):
            return []

    def release(self, pid: int) -> None:
        """The attempt ended: its group goes once its last process is reaped."""
        group = self.groups.pop(pid, None)
        if group is not None:
            self.empty_later.append(group)
        self.tidy()

    def tidy(self) -> None:
        left = []
        for group in self.empty_later:
            try:
                os.rmdir(group)
            except FileNotFoundError:
                continue
            except OSError:  # processes not reaped yet: later
                left.append(group)
        self.empty_later = left

    def close(self) -> None:
        self.tidy()
        try:  # noqa: SIM105
            os.rmdir(self.folder)
        except OSError:
            pass
