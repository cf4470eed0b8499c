"""Which processes are attempts this host started, proven from /proc; killing only those.

A pid read from disk proves nothing: whoever can write a heartbeat in
``runners/`` can name any process, with its true start time (anyone may read
it from /proc). So before a process named that way (or one its attempt left
behind) is killed, this module proves from the kernel's own account of it
that it is ours. Each proof needs every one of:

* **same user**: its real and effective uid are the runner's; another user's
  process is never touched, even by a runner that could (root);
* **the runner's marker**: its environment, as /proc shows it, carries
  ``JOBSPOOL_RUNNER_PID=<pid>`` naming the runner process of the heartbeat.
  The runner sets it on the fork server and on spawned attempts, so every
  attempt has it, and every process an attempt starts inherits it;
  environments are not something a file in the spool can change;
* for **the attempt itself**: it leads its own session (attempts call
  ``setsid``, so sid == pid) and it started when the heartbeat says
  (``pid_created``, within :data:`START_TOLERANCE`): a pid reused by
  another process is not the attempt;
* for **what the attempt left behind**: it started no earlier than the
  attempt, and it is in the attempt's session (sid == the attempt's pid;
  Linux never reuses a pid while a session still bears its number), or its
  environment carries the attempt's token (``JOBSPOOL_ATTEMPT=<token>``, set
  by the attempt for what it starts) when it left the session.

What stays possible: a process of the runner's own user that copies the
marker into its environment can be named and killed, and so can another
runner's attempt on this host by a heartbeat that names that runner's pid:
neither is a process this host did not start, and the first could kill
anything of ours by itself anyway. A descendant that scrubs its environment
and leaves the session cannot be proven and is left alone here (the fork
server, a subreaper, kills it while it lives: see ``zygote``).

Only Linux has this /proc; elsewhere nothing named on disk is killed. Reads
are bounded, follow no link a process could plant, and a process that ends
while it is read is simply not proven.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from dataclasses import dataclass

from jobspool.child import ATTEMPT_MARK, RUNNER_MARK

# Start times are whole clock ticks since boot, shown in wall-clock seconds
# through the boot time, which NTP may nudge: a second covers the drift.
START_TOLERANCE = 1.0
_ENVIRON_MAX = 1 << 20  # far above any real environment (ARG_MAX is 2 MiB for all of argv too)
PROC = "/proc"


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    sid: int
    started: float  # seconds since the epoch, as psutil's create_time gives it
    uids: tuple[int, int]  # real, effective
    environ: frozenset[bytes]


def available() -> bool:
    return os.path.isfile(f"{PROC}/self/stat") and os.path.isfile(f"{PROC}/stat")


def _read(path: str, cap: int = 1 << 16) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC)
    try:
        chunks = []
        while cap > 0 and (chunk := os.read(fd, min(cap, 1 << 16))):
            chunks.append(chunk)
            cap -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def boot_time() -> float:
    for line in _read(f"{PROC}/stat").splitlines():
        if line.startswith(b"btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def read(pid: int, boot: float) -> ProcInfo | None:
    """What /proc says of pid; None if it is gone, a zombie or unreadable."""
    base = f"{PROC}/{pid}"
    try:
        stat = _read(f"{base}/stat")
        status = _read(f"{base}/status")
        environ = _read(f"{base}/environ", _ENVIRON_MAX)
    except OSError:
        return None
    # The command name (in parentheses) may hold anything: fields follow the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    uids = next((ln.split()[1:3] for ln in status.splitlines() if ln.startswith(b"Uid:")), [])
    if len(fields) < 20 or fields[0] in (b"Z", b"X") or len(uids) != 2:
        return None
    return ProcInfo(
        pid=pid,
        sid=int(fields[3]),
        started=boot + int(fields[19]) / os.sysconf("SC_CLK_TCK"),
        uids=(int(uids[0]), int(uids[1])),
        environ=frozenset(environ.split(b"\0")),
    )


@dataclass(frozen=True)
class Attempt:
    """An attempt as its runner recorded it: what the proof is checked against."""

    pid: int
    created: float | None  # the pid's start time; None: not recorded (then only `since`)
    since: float  # no process it left behind started before this
    token: str | None
    runner_pid: int


def runner_marks() -> dict[str, str]:
    """The environment the runner gives its fork server and spawned attempts."""
    return {RUNNER_MARK: str(os.getpid())}


def _ours(info: ProcInfo, attempt: Attempt) -> bool:
    me = os.getuid()
    return info.uids == (me, me) and f"{RUNNER_MARK}={attempt.runner_pid}".encode() in info.environ


def _is_the_attempt(info: ProcInfo, attempt: Attempt) -> bool:
    if info.sid != info.pid:
        return False
    return attempt.created is None or abs(info.started - attempt.created) <= START_TOLERANCE


def _left_behind(info: ProcInfo, attempt: Attempt, session: bool) -> bool:
    if info.started < attempt.since - START_TOLERANCE:
        return False
    if session and info.sid == attempt.pid:
        return True
    return attempt.token is not None and f"{ATTEMPT_MARK}={attempt.token}".encode() in info.environ


def proven(attempt: Attempt) -> list[ProcInfo]:
    """The attempt, if it still runs and is proven, and every process proven
    to be left behind by it."""
    if not available():
        return []
    boot = boot_time()
    leader = read(attempt.pid, boot)
    found = []
    is_it = leader is not None and _ours(leader, attempt) and _is_the_attempt(leader, attempt)
    if leader is not None and is_it:
        found.append(leader)
    # A live process under the attempt's pid that is not the attempt took
    # the pid over, and the session under that number is its own.
    session = leader is None or is_it
    for name in os.listdir(PROC):
        if not name.isdigit() or int(name) == attempt.pid:
            continue
        info = read(int(name), boot)
        if info and _ours(info, attempt) and _left_behind(info, attempt, session):
            found.append(info)
    return found


def kill_proven(attempt: Attempt) -> list[int]:
    """SIGKILL what :func:`proven` finds; returns the pids signalled.

    Each is signalled through a pidfd opened after the proof and checked
    against it, so a process that ended meanwhile and left its pid to
    another is not the one signalled (without pidfds, before Linux 5.3, the
    check comes right before a plain kill).
    """
    killed = []
    boot = boot_time() if available() else 0.0
    for info in proven(attempt):
        with contextlib.suppress(OSError):
            if _kill_if_same(info, boot):
                killed.append(info.pid)
    return killed


def _kill_if_same(info: ProcInfo, boot: float) -> bool:
    try:
        fd = os.pidfd_open(info.pid)
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
        fd = -1
    try:
        again = read(info.pid, boot)
        if again is None or again.started != info.started:
            return False
        if fd >= 0:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        else:
            os.kill(info.pid, signal.SIGKILL)
        return True
    finally:
        if fd >= 0:
            os.close(fd)
