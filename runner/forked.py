"""What the fork server (``zygote``) and the processes it forks (spares,
pool workers: ``poolworker``) have in common: a forked child's first steps
(its own session, default signals, only its own descriptors), printing
what ended a forked process, and listing a process's own children.

Imported by the fork server before its first fork, so, like it, this
imports only what the interpreter has loaded anyway (see ``executor``).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING would import typing: see executor
if TYPE_CHECKING:
    from typing import Any

# The C-level signal module: the public ``signal`` module imports enum (half
# a megabyte), and converting to and from enums costs a forked child ~80
# copied pages.
_signal: Any = __import__("_signal")


def become_child(keep: tuple[int, ...], sigchld: bool) -> None:
    """A forked child's set-up: a session of its own (its whole tree can be
    killed as a group), Ctrl-C as KeyboardInterrupt, the zygote's SIGCHLD
    handling undone where it had changed it (``sigchld``), and no descriptor
    but ``keep`` (and 0-2) left open."""
    os.setsid()
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    if sigchld:  # only the fallback zygote changed these
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    close_all_but(keep)


def close_all_but(keep: tuple[int, ...]) -> None:
    """Close every descriptor from 3 up except ``keep``: a child must not hold
    the zygote's pipes, pidfds or other spares' request pipes."""
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, _MAX_FD)


_MAX_FD = 1 << 20


def print_crash() -> None:
    """The traceback of what ended a forked process, on its stderr (the job's
    log), if anything is left to print it with."""
    try:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
    except BaseException:  # noqa: S110 - nothing left to tell it to
        pass


def own_children() -> list[int]:
    """This process's children (it has one thread), as the kernel lists them."""
    me = os.getpid()
    try:
        fd = os.open(f"/proc/self/task/{me}/children", os.O_RDONLY)
    except OSError:
        return _children_by_scan(me)
    try:
        data = b""
        while chunk := os.read(fd, 1 << 16):
            data += chunk
    finally:
        os.close(fd)
    return [int(p) for p in data.split()]


def _children_by_scan(me: int) -> list[int]:
    """Without the children file (a kernel built without it): every /proc/N/stat."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fd = os.open(f"/proc/{name}/stat", os.O_RDONLY)
            try:
                stat = os.read(fd, 4096)
            finally:
                os.close(fd)
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and fields[1] == b"%d" % me:
            found.append(int(name))
    return found
