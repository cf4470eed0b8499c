"""Inside a pool worker (``isolation: pool``, see ``config``): a child the
fork server (``zygote``) forks like a spare that, instead of exiting after
its attempt, waits for the next.

A worker imports what the zygote had not imported when it was forked,
once. Each worker has a socket pair with the zygote; per attempt the zygote
sends the request (its length as a decimal line, then its wire bytes) with
the write end of a new report pipe (``SCM_RIGHTS``), so each attempt still
has a channel and a token of its own and a process an earlier attempt left
cannot speak for a later one. The worker points fds 1 and 2 at that job's
log (child.prepare) and restores them after, and sets the attempt's output
cap as its soft RLIMIT_FSIZE (the hard limit of a live process cannot come
back up); then it kills and reaps its own children and writes its exit
code on the socket ("done"). A worker exits with the attempt's code instead
(and the zygote reports ``X`` as for any attempt) once it has run
``max_attempts_per_worker`` attempts, when its resident size after an
attempt is above ``max_worker_memory``, or when an attempt left a thread
running (job code never runs beside another attempt's). End of file on its
socket retires it. What the zygote does around this (sweeping, relaying
the report, ``D``) is in ``zygote``.

What a pooled attempt shares: job code runs in a process that earlier
attempts of other jobs ran in and later ones will, so what a job changes
in its process (module globals, signal handlers, the environment) is seen
by later attempts of that worker; a job could even read the next request
from its worker's socket. Pool only jobs that are trusted like the engine
itself; a job that must be contained runs in a process of its own.
"""

from __future__ import annotations

import os
import sys

from jobspool import child
from jobspool.child import EXIT_INTERNAL, RunRequest
from jobspool.forked import become_child, own_children, print_crash

TYPE_CHECKING = False  # typing.TYPE_CHECKING would import typing: see executor
if TYPE_CHECKING:
    from typing import Any

# The C-level signal module: the public ``signal`` module imports enum (half
# a megabyte), and converting to and from enums costs a forked child ~80
# copied pages.
_signal: Any = __import__("_signal")


def pool_main(sock_fd: int, sigchld: bool) -> None:
    """A forked pool worker: run the attempts handed over on its socket, one
    at a time, until retired (end of file) or spent (see _PoolWorker.spent)."""
    code = EXIT_INTERNAL
    try:
        become_child((sock_fd,), sigchld)
        code = _PoolWorker(sock_fd).serve()
    except BaseException:
        print_crash()
    finally:
        os._exit(code)


class _PoolWorker:
    """Inside a pool worker: each attempt as an attempt process would run it.

    Per attempt: a request and a report pipe of its own (passed with
    SCM_RIGHTS), the job's log on fds 1 and 2 (child.prepare), the job's
    context set and reset (child.execute). After it: output flushed and
    fds 1 and 2 restored, every child process the attempt left killed and
    reaped (their own children are adopted by the zygote, which kills them
    before it relays the report), the working directory restored. Then the
    worker says "done" with the attempt's exit code, or exits with it when
    it is spent.
    """

    def __init__(self, sock_fd: int) -> None:
        import _socket

        self.sk = _socket
        self.sock = _socket.socket(fileno=sock_fd)
        self.out, self.err = os.dup(1), os.dup(2)
        self.cwd = os.getcwd()
        self.attempts = 0
        self.resource: Any = None  # imported by the first attempt with an output cap

    def cap_output(self, req: RunRequest) -> None:
        """The attempt's output cap (``limits.output_bytes``) as the soft
        RLIMIT_FSIZE from its log's size now, as for an attempt process. The
        hard limit cannot be lowered and raised again in a live process, so
        it stays: this stops runaway output (SIGXFSZ ends the worker, recorded
        as ``LimitExceeded``), not job code that raises its own soft limit."""
        cap = req.pool[2] if req.pool else 0
        if not cap:
            return
        if self.resource is None:
            import resource

            self.resource = resource
            if hasattr(_signal, "SIGXFSZ"):  # ignored by the interpreter: see child.prepare
                _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
        try:
            size = os.lstat(req.log_path).st_size
        except OSError:
            size = 0
        _, hard = self.resource.getrlimit(self.resource.RLIMIT_FSIZE)
        soft = size + cap if hard == self.resource.RLIM_INFINITY else min(size + cap, hard)
        self.resource.setrlimit(self.resource.RLIMIT_FSIZE, (soft, hard))

    def uncap_output(self) -> None:
        if self.resource is not None:
            _, hard = self.resource.getrlimit(self.resource.RLIMIT_FSIZE)
            self.resource.setrlimit(self.resource.RLIMIT_FSIZE, (hard, hard))

    def serve(self) -> int:
        while True:
            got = self.receive()
            if got is None:
                return 0  # retired by the zygote
            req, report_fd = got
            try:
                not_run = child.prepare(req, own_limits=False)
                self.cap_output(req)
                code = child.run(req, report_fd, not_run)
            finally:
                self.uncap_output()
                os.close(report_fd)
                self.settle()
            self.attempts += 1
            if self.spent(req):
                return code
            self.sock.sendall(b"%d" % code)

    def receive(self) -> tuple[RunRequest, int] | None:
        """The next request and its report pipe; None at end of file."""
        sk = self.sk
        data, ancillary, _, _ = self.sock.recvmsg(1 << 16, sk.CMSG_SPACE(4))
        fds = [
            int.from_bytes(payload[:4], sys.byteorder)
            for level, kind, payload in ancillary
            if level == sk.SOL_SOCKET and kind == sk.SCM_RIGHTS
        ]
        while data and b"\n" not in data:
            data += self.sock.recv(64)
        if not data or len(fds) != 1:
            return None
        # Close-on-exec, as an attempt process's own report pipe is (a
        # passed descriptor is not): a program the job runs does not get it.
        os.set_inheritable(fds[0], False)
        head, _, rest = data.partition(b"\n")
        chunks, size = [rest], len(rest)
        while size < int(head):
            chunk = self.sock.recv(min(int(head) - size, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            size += len(chunk)
        return RunRequest.from_wire(b"".join(chunks)), fds[0]

    def settle(self) -> None:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        os.dup2(self.out, 1)
        os.dup2(self.err, 2)
        _kill_children()
        try:  # noqa: SIM105 - contextlib is not loaded in the fork server
            os.chdir(self.cwd)
        except OSError:
            pass

    def spent(self, req: RunRequest) -> bool:
        """Whether this worker must not run another attempt: its count is
        reached, it is above its memory bound, or the attempt left a thread
        running (job code must never run beside another attempt's)."""
        most, memory, _ = req.pool or (1, 0, 0)
        return self.attempts >= most or _threads() > 1 or _resident() > memory


def _kill_children() -> None:
    """Kill (with the group it leads, if any) and reap every child process
    of this process: what an attempt in a pool worker left behind."""
    kids = own_children()
    for pid in kids:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, _signal.SIGKILL)
        except OSError:
            pass
        try:  # noqa: SIM105
            os.kill(pid, _signal.SIGKILL)
        except OSError:
            pass
    for pid in kids:
        try:  # noqa: SIM105
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _resident() -> int:
    """This process's resident set size in bytes (0 where /proc cannot say)."""
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        return 0
    try:
        fields = os.read(fd, 256).split()
    finally:
        os.close(fd)
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE") if len(fields) > 1 else 0
