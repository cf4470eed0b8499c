"""Start and kill attempt processes: the runner's side, and all its
platform-specific process code.

One process per attempt by default (``isolation: process``); pooled jobs
(``isolation: pool``) run in long-lived pool workers (``poolworker``). On
POSIX a *fork server* (a "zygote", ``zygote``) is
started once with ``subprocess`` (fork+exec, so it never inherits the
runner's threads), imports the engine, and then forks one child per attempt:
about 1 ms instead of 8 ms for a fresh interpreter. Each child calls
``setsid`` so its whole tree can be killed as a process group. On Windows,
where fork does not exist, each attempt is a fresh ``python -m jobspool.child``
in a new process group. ``start_method`` picks either on POSIX too.

The runner starts the fork server through a start-up trampoline
(``_SUBREAPER_BOOT``) that makes it a child subreaper on Linux and then
execs ``python -P -m jobspool.zygote``; how the zygote then makes sure that
nothing an attempt starts outlives it, and sets a request's limits before
an attempt runs, is in ``zygote``. Elsewhere the process group and psutil's
view of the tree (``kill_tree``) are what there is. This module owns the
launchers (``ForkServer``, ``Spawner``, ``make_launcher``) and the kill
helpers the runner and the zygote both use (``kill_tree``, ``kill_group``).

Protocol with the zygote, written down here only (``zygote`` and
``poolworker`` keep their sides of it). Runner -> zygote: one frame per
attempt, the payload's length as a decimal line, then the RunRequest's wire
bytes (``marshal``: both ends are the same interpreter); the zygote reads
the fields it needs and hands the same bytes to the attempt. A line
``K<token>`` (:meth:`ForkServer.stop`) kills the attempt's process and
group, only while that process still runs that attempt. Zygote -> runner,
one line per message: ``{"ready": true, "pid": n}`` once, then tab-separated status
lines (tokens hold no tab or newline): ``S <token> <pid>`` right after the
hand-over to a spare, ``R <token> <pid> <report>`` when the attempt sent its
report, ``X <token> <pid> <rc>`` when it reaps the child (rc < 0 is the
signal number, as in subprocess), ``D <token> <pid> <rc>`` when a pooled
attempt is done: it ended as an exit with status rc would, the worker is
kept. Only the zygote writes to the runner's pipe, and an attempt's report
always comes before its "X" or "D" line (see ``zygote``: the pipes).

Pooled requests go to pool workers only when the zygote is a subreaper
(:attr:`ForkServer.pools`); otherwise they run one process per attempt.

Launchers never block the runner: ``start`` only sends the request, and
the attempt's start, report and exit arrive later as the typed messages of
``messages`` (``AttemptStarted``, ``AttemptReported``, ``AttemptExited``,
decoded there from the pipe's lines): posted by ``pump`` on the runner's own
thread when it polls the fork server's pipe (``fd``), or by one waiter
thread per attempt for spawned attempts.
"""

from __future__ import annotations

import os
import select
import sys
import time

from jobspool.child import RunRequest

# The fork server imports this module (for its kill helpers), and every
# attempt is a fork of it: a bigger process forks and exits more slowly
# (about 0.1 ms per attempt for each megabyte here). So the top level
# imports only what the interpreter has loaded anyway, the runner's side
# imports what it needs where it needs it, and typing is for the type
# checker alone (typing.TYPE_CHECKING would import typing).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    import threading
    from collections.abc import Callable
    from typing import IO, Any, Protocol

    from jobspool.messages import Event

    Post = Callable[[Event], None]

    class Launcher(Protocol):
        @property
        def fd(self) -> int | None: ...
        def pump(self) -> None: ...
        def wait_ready(self) -> None: ...
        def start(self, req: RunRequest) -> None: ...
        def stop(self, token: str) -> None: ...
        @property
        def pools(self) -> bool: ...
        def close(self) -> None: ...


# The C-level signal module: the public ``signal`` module imports enum (half
# a megabyte), and converting to and from enums costs a forked child ~80
# copied pages.
_signal: Any = __import__("_signal")
POSIX = os.name == "posix"


def kill_tree(pid: int) -> list[int]:
    """Kill pid, its process group (POSIX) and every descendant psutil can see."""
    import psutil

    procs: list[psutil.Process] = []
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        pass
    if POSIX:
        kill_group(pid)
    for proc in procs:
        try:  # noqa: SIM105 - contextlib is not loaded in the fork server
            proc.kill()
        except psutil.Error:
            pass
    return [p.pid for p in procs]


def kill_group(pgid: int) -> None:
    """After an attempt ended, its leftover background children go too."""
    if POSIX:
        # A plain try: the fork server calls this after every attempt, and
        # contextlib's machinery would touch (and copy) more of its pages.
        try:  # noqa: SIM105
            os.killpg(pgid, _signal.SIGKILL)
        except OSError:  # none left: the common case
            pass


def create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


# ``-m`` would put the working directory first on sys.path, so a project
# that has its own ``runner`` package would shadow the engine in the fork
# server. -P (Python 3.11+) leaves it out; the engine comes from PYTHONPATH.
SAFE_PATH = ("-P",)


def _engine_env() -> dict[str, str]:
    from jobspool import provenance

    env = dict(os.environ) | provenance.runner_marks()
    # The folder that holds the package under its import name, as imported
    # (not resolved: a development install links jobspool/ to runner/).
    engine_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (engine_root, env.get("PYTHONPATH")) if p)
    return env


class ForkServer:
    """Runner side of the zygote.

    No thread: the runner's loop polls :attr:`fd` and calls :meth:`pump`,
    which posts the zygote's messages as events on the loop's own thread.
    """

    def __init__(self, post: Post) -> None:
        import subprocess

        from jobspool import messages

        self._post = post
        self._messages = messages
        self._ready = False
        self._subreaper = False
        self._gone = False
        self._buf = b""
        self.proc = subprocess.Popen(
            [sys.executable, *SAFE_PATH, "-c", _SUBREAPER_BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_engine_env(),
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin: IO[bytes] = self.proc.stdin
        self._stdout: IO[bytes] = self.proc.stdout
        # Both ends are used raw and non-blocking, by the runner's loop only.
        os.set_blocking(self._stdout.fileno(), False)
        os.set_blocking(self._stdin.fileno(), False)

    @property
    def fd(self) -> int | None:
        """The descriptor to poll for messages; None once the zygote is gone."""
        return None if self._gone else self._stdout.fileno()

    def pump(self) -> None:
        """Read whatever the zygote has sent and post it; never blocks."""
        while not self._gone:
            try:
                chunk = os.read(self._stdout.fileno(), 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                self._gone_now()
                return
            self._buf += chunk
            *lines, self._buf = self._buf.split(b"\n")
            for line in lines:
                self._line(line)

    def _line(self, line: bytes) -> None:
        # Only the zygote writes here, but it relays what attempts send: a
        # line that is not a message is logged and dropped, never allowed to
        # stop the runner; a report that is not one fails its own attempt.
        m = self._messages
        try:
            msg = m.decode_launcher_line(line)
        except m.BadReport as exc:
            from jobspool import logs

            logs.event("bad_report", logs.WARNING, token=exc.token, pid=exc.pid, error=exc)
            self._post(m.AttemptReported(exc.token, exc.pid, m.unreadable_report(str(exc))))
            return
        except m.BadMessage as exc:
            from jobspool import logs

            logs.event("bad_message", logs.WARNING, source="fork server pipe", error=exc)
            return
        if isinstance(msg, m.LauncherReady):
            self._ready = True
            self._subreaper = msg.subreaper
            _log_containment("subreaper" if msg.subreaper else "process group")
        else:
            self._post(msg)

    def _gone_now(self) -> None:
        if not self._gone:
            self._gone = True
            self._post(self._messages.LauncherGone())

    def wait_ready(self) -> None:
        """Wait until the zygote has imported the engine (the runner does its
        start-up scan meanwhile), so no attempt pays for interpreter start-up."""
        poller = select.poll()
        poller.register(self._stdout.fileno(), select.POLLIN)
        deadline = time.monotonic() + 60
        while not self._ready and not self._gone:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            poller.poll(int(left * 1000) + 1)
            self.pump()
        if not self._ready or self.proc.poll() is not None:
            raise RuntimeError("the fork server failed to start")

    @property
    def pools(self) -> bool:
        """Whether pooled requests run in pool workers: only under a
        subreaper, which kills what an attempt leaves behind when it ends
        (a pool worker outlives its attempts, so its group cannot be killed)."""
        return self._ready and self._subreaper

    def start(self, req: RunRequest) -> None:
        if not self._ready:
            self.wait_ready()
        wire = req.to_wire()
        self._write(b"%d\n" % len(wire) + wire)

    def stop(self, token: str) -> None:
        """Kill the attempt's process (a pool worker with it) and its group,
        if it still runs that attempt: the fork server knows which process
        does, where a pid might already run the next attempt."""
        self._write(b"K%s\n" % token.encode())

    def _write(self, data: bytes) -> None:
        fd = self._stdin.fileno()
        while data:
            try:
                data = data[os.write(fd, data) :]
            except BrokenPipeError:
                # The zygote is gone. Its pipe to us may not reach EOF yet
                # (attempts hold it open until they report), so say so now.
                self._gone_now()
                raise
            except BlockingIOError:
                # The zygote may itself be blocked writing to us: read what
                # it sent, or both sides would wait for each other forever.
                self.pump()
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
                if not self._gone:
                    poller.register(self._stdout.fileno(), select.POLLIN)
                poller.poll(100)

    def close(self) -> None:
        import subprocess

        try:  # noqa: SIM105 - contextlib is not loaded in the fork server
            self._stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stdout.close()


def _log_containment(tree: str) -> None:
    """Say at start how attempts are held: what kills their trees, what caps processes."""
    from jobspool import logs

    process_limit = "none (not POSIX)"
    if POSIX:
        from jobspool import limits

        process_limit = limits.describe()
    logs.event("attempt_containment", tree=tree, process_limit=process_limit)


# The fork server is started through this: it makes the process a child
# subreaper (Linux), so whatever an attempt leaves behind, even after a
# double fork and setsid, is re-parented to the fork server and not to
# init, then execs the real fork server (the flag survives exec; ctypes
# does not, so the fork server stays small).
_SUBREAPER_BOOT = """\
import os, sys
try:
    if sys.platform.startswith("linux"):
        import ctypes
        if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0:
            os.environ["JOBSPOOL_SUBREAPER"] = "1"
except Exception:
    pass
os.execv(sys.executable, [sys.executable, "-P", "-m", "jobspool.zygote"])
"""


class Spawner:
    """One fresh interpreter per attempt (Windows, or start_method: spawn)."""

    def __init__(self, post: Post) -> None:
        self._post = post
        self._threads: list[threading.Thread] = []
        _log_containment("process group")

    fd = None  # its threads post events themselves

    def pump(self) -> None:
        """Nothing to read: see fd."""

    def wait_ready(self) -> None:
        """Nothing to wait for: each attempt starts its own interpreter."""

    pools = False  # one interpreter per attempt, always

    def stop(self, token: str) -> None:
        """Never asked: only pooled attempts are stopped through the launcher."""

    def start(self, req: RunRequest) -> None:
        import subprocess
        import threading

        from jobspool.messages import AttemptStarted

        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        # The request travels on the child's stdin, never through a file in
        # the spool; the child opens the job's log itself (child.attach_log).
        proc = subprocess.Popen(
            [sys.executable, *SAFE_PATH, "-m", "jobspool.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=POSIX,
            creationflags=flags,
            env=_engine_env(),
        )
        waiter = threading.Thread(
            target=self._wait, args=(proc, req.token, req.to_wire()), daemon=True
        )
        self._threads.append(waiter)
        self._post(AttemptStarted(req.token, proc.pid))
        waiter.start()

    def _wait(self, proc: subprocess.Popen[bytes], token: str, request: bytes) -> None:
        from jobspool.messages import AttemptExited

        assert proc.stdin is not None
        try:  # noqa: SIM105 - a child that died first gets no request: its exit says so
            proc.stdin.write(request)
        except OSError:
            pass
        try:  # noqa: SIM105
            proc.stdin.close()
        except OSError:
            pass
        if hasattr(os, "waitid"):
            # Exited but not reaped: its group's id is still its own, so
            # what it left in the group can be killed without touching a
            # process that took over a freed pid.
            try:
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
                kill_group(proc.pid)
            except ChildProcessError:
                pass
        code = proc.wait()
        self._post(AttemptExited(token, code))

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()


def make_launcher(start_method: str, post: Post) -> Launcher:
    if start_method == "spawn" or not hasattr(os, "fork"):
        return Spawner(post)
    return ForkServer(post)
