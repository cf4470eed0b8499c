"""Start and kill attempt processes; all platform-specific process code.

One process per attempt, always. On POSIX a *fork server* (a "zygote") is
started once with ``subprocess`` (fork+exec, so it never inherits the
runner's threads), imports the engine, and then forks one child per attempt:
about 1 ms instead of 8 ms for a fresh interpreter. Each child calls
``setsid`` so its whole tree can be killed as a process group. On Windows,
where fork does not exist, each attempt is a fresh ``python -m jobspool.child``
in a new process group. ``start_method`` picks either on POSIX too.

Nothing an attempt starts outlives it. On Linux the zygote is a child
subreaper (``PR_SET_CHILD_SUBREAPER``, set by a start-up trampoline that
then execs it): a process whose parent dies is re-parented to the zygote,
not to init, even after a double fork and ``setsid``. Whenever it reaps
something, the zygote kills every adopted process that belongs to no
running attempt (not in a running attempt's session, and without its token
in its environment), so what an attempt leaves behind dies when it ends,
at its timeout or cancel too (the runner kills the attempt, the zygote the
rest). An attempt with a processes limit also has a pids cgroup, whose
members are all killed when it ends (see ``limits``). When its pipe from the
runner closes (the runner died, even by SIGKILL) the zygote kills every
child and keeps killing what it adopts until nothing is left. Elsewhere
the process group and psutil's view of the tree are what there is.

Before handing a spare its request the zygote sets the request's limits on
it (``limits``, by ``prlimit``): the job never runs unlimited; if they
cannot be set, the attempt is reported failed without running.

Protocol with the zygote. Runner -> zygote: one frame per attempt, the
payload's length as a decimal line, then the RunRequest's wire bytes
(``marshal``: both ends are the same interpreter); the zygote reads the
fields it needs and hands the same bytes to the attempt. Zygote -> runner,
one line per message: ``{"ready": true, "pid": n}`` once, then tab-separated status
lines (tokens hold no tab or newline): ``S <token> <pid>`` right after the
hand-over to a spare, ``R <token> <pid> <report>`` when the attempt sent its
report, ``X <token> <pid> <rc>`` when it reaps the child (rc < 0 is the
signal number, as in subprocess). Only the zygote writes to the runner's
pipe: each attempt gets a pipe of its own for its report (one JSON line
when it fits in one atomic write, see child.send_report), and the zygote
relays the first line that comes on it under the token it gave that
attempt, so no job can speak for another or break the framing. A report is
an attempt's last word: the zygote ends the process once it has relayed
it, and always relays it before the "X" line.

Launchers never block the runner: ``start`` only sends the request, and
the attempt's start, report and exit arrive later as the typed messages of
``messages`` (``AttemptStarted``, ``AttemptReported``, ``AttemptExited``,
decoded there from the pipe's lines): posted by ``pump`` on the runner's own
thread when it polls the fork server's pipe (``fd``), or by one waiter
thread per attempt for spawned attempts.
"""

from __future__ import annotations

import gc
import os
import select
import sys
import time

from jobspool import child
from jobspool.child import EXIT_INTERNAL, RunRequest

# The fork server imports this module, and every attempt is a fork of it: a
# bigger process forks and exits more slowly (about 0.1 ms per attempt for
# each megabyte here). So the top level imports only what the interpreter
# has loaded anyway, the runner's side imports what it needs where it needs
# it, and typing is for the type checker alone (typing.TYPE_CHECKING would
# import typing).
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

    def start(self, req: RunRequest) -> None:
        if not self._ready:
            self.wait_ready()
        wire = req.to_wire()
        data = b"%d\n" % len(wire) + wire
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
os.execv(sys.executable, [sys.executable, "-P", "-m", "jobspool.executor"])
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


# ---------------------------------------------------------------- zygote side


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _close_all_but(keep: tuple[int, ...]) -> None:
    """Close every descriptor from 3 up except ``keep``: a child must not hold
    the zygote's pipes, pidfds or other spares' request pipes."""
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, _MAX_FD)


_MAX_FD = 1 << 20
# The zygote sets a spare's limits with prlimit (Linux) before handing it a
# request; elsewhere the attempt sets its own.
_PRLIMIT = sys.platform.startswith("linux")


def _spare_main(req_fd: int, report_fd: int, sigchld: bool) -> None:
    """A forked spare: set up, wait for one request, run it, exit.

    Spares are forked ahead of need, so the fork and this setup are off the
    path from "claim" to "job code running". An empty request (the zygote
    closed the pipe) retires the spare. Kept to a few calls: every page a
    forked child writes is a copy-on-write fault, and on virtual machines a
    fault costs several microseconds.
    """
    code = EXIT_INTERNAL
    try:
        os.setsid()
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        if sigchld:  # only the fallback zygote changed these
            _signal.set_wakeup_fd(-1)
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        _close_all_but((req_fd, report_fd))
        # No rehearsal here while idle: it would copy the pages the attempt
        # writes ahead of the request, but it also copies pages the attempt
        # never needs, and costs more CPU (~0.5 ms per attempt) than the
        # latency it hides.
        data = _read_all(req_fd)
        os.close(req_fd)
        if not data:
            code = 0
            return
        req = RunRequest.from_wire(data)
        code = child.run(req, report_fd, child.prepare(req, own_limits=not _PRLIMIT))
    except BaseException:
        try:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:  # noqa: S110 - nothing left to tell it to
            pass
    finally:
        os._exit(code)


def _reap_one(attempts: dict[int, str]) -> tuple[int, int]:
    """Reap one exited child: (pid, status), (0, 0) if none.

    An attempt's group is killed (the background children it left behind)
    before the attempt is reaped, while its pid, the group's id, cannot be
    another process's yet. Without waitid (macOS before Python 3.13), right
    after it instead.
    """
    try:
        if not hasattr(os, "waitid"):
            got, status = os.waitpid(-1, os.WNOHANG)
            if got in attempts:
                kill_group(got)
            return got, status
        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return 0, 0
        if info.si_pid in attempts:
            kill_group(info.si_pid)
        return os.waitpid(info.si_pid, 0)  # a zombie already: no wait
    except ChildProcessError:
        return 0, 0


def _own_children() -> list[int]:
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


def _attempt_token(pid: int) -> str | None:
    """The attempt token in a process's environment (child.ATTEMPT_MARK), if any."""
    try:
        fd = os.open(f"/proc/{pid}/environ", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 1 << 20)
    except OSError:
        return None
    finally:
        os.close(fd)
    mark = child.ATTEMPT_MARK.encode() + b"="
    for entry in data.split(b"\0"):
        if entry.startswith(mark):
            return entry[len(mark) :].decode("utf-8", "replace")
    return None


def _warn_if_threaded(class_path: str) -> None:
    """A job module that starts a thread on import makes forking unsafe."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        print(
            f"jobspool: importing {class_path} started a thread in the fork server; "
            "forking a threaded process can deadlock: start threads inside the job",
            file=sys.stderr,
            flush=True,
        )


class _Warmer:
    """Imports allowed job classes in the zygote, so each fork inherits them.

    Saves every attempt its import and its binding plan (several ms). A job
    module whose file changes is dropped and imported afresh before the
    next fork, so edited job code takes effect without a restart. A class
    that fails to import here is left cold: the child imports it and
    reports the error properly.
    """

    def __init__(self) -> None:
        self.files: dict[str, list[tuple[str, float]]] = {}
        self.modules: dict[str, list[str]] = {}
        self.cold: set[str] = set()
        self.ready: set[tuple[str, str, str]] = set()  # (class, method, base) warm

    def _mtimes(self, paths: list[str]) -> list[tuple[str, float]]:
        out = []
        for path in paths:
            try:  # noqa: SIM105 - contextlib is not loaded in the fork server
                out.append((path, os.stat(path).st_mtime))
            except OSError:
                pass
        return out

    def _stale(self, class_path: str) -> bool:
        return self._mtimes([f for f, _ in self.files[class_path]]) != self.files[class_path]

    def _forget(self, class_path: str) -> None:
        from jobspool import binding

        names = self.modules.pop(class_path, [])
        self.files.pop(class_path, None)
        self.ready = {r for r in self.ready if r[0] != class_path}
        for name in names:
            sys.modules.pop(name, None)
        for key in [k for k in binding._PLANS if k[0].__module__ in names]:
            del binding._PLANS[key]

    def warm(self, path: str, method: str, base: str) -> bool:
        """Make sure the class is imported here; True if anything changed."""
        from jobspool import binding

        if path in self.cold:
            return False
        if (path, method, base) in self.ready and not self._stale(path):
            return False  # the common case: two stat calls, nothing else
        changed = path not in self.files
        if not changed and self._stale(path):
            self._forget(path)
            changed = True
        if base not in sys.path:
            sys.path.insert(0, base)
        try:
            cls = binding.load_class(path)
            changed = changed or (cls, method) not in binding._PLANS
            binding.plan(cls, method)
        except BaseException:
            self.cold.add(path)
            return True
        _warn_if_threaded(path)
        if path not in self.files:
            names = sorted({path.rpartition(".")[0], cls.__module__})
            files = [getattr(sys.modules.get(n), "__file__", None) for n in names]
            self.modules[path] = names
            self.files[path] = self._mtimes([f for f in files if f])
        self.ready.add((path, method, base))
        return changed


# Spares are forked in batches: refilled when only SPARES_LOW are left, up to
# SPARES_HIGH. After a fork every page of the zygote is shared copy-on-write
# with the child, so the zygote's own bookkeeping after each fork faults in
# a hundred pages or so; forking back to back pays that once per batch.
SPARES_LOW = 1
SPARES_HIGH = 4


class _Zygote:
    """Forks attempts and reports their exits.

    It keeps spare children forked ahead of need, each blocked reading its
    request pipe; a request goes to the oldest spare. When the zygote
    imports a job module, the spares (forked before it) are retired, so new
    ones inherit the import.

    Children are watched through pidfds (Linux): no SIGCHLD handler, so a
    child inherits no handler it would have to undo. Elsewhere a SIGCHLD
    handler wakes the loop through a self-pipe. The loop uses ``poll`` and
    plain tuples: less Python between forks means fewer copied pages.
    """

    def __init__(self) -> None:
        # Keep the pipes on private fds; 0 and 1 become harmless for children.
        self.inp = os.dup(0)
        self.out = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(2, 1)
        os.close(devnull)
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # the runner decides when we stop
        self.poll = select.poll()
        self.poll.register(self.inp, select.POLLIN)
        self.use_pidfd = hasattr(os, "pidfd_open")
        self.wake = -1
        if not self.use_pidfd:
            self.wake, wake_w = os.pipe()
            os.set_blocking(wake_w, False)
            os.set_blocking(self.wake, False)
            _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
            _signal.signal(_signal.SIGCHLD, lambda *_: None)
            self.poll.register(self.wake, select.POLLIN)
        self.children: dict[int, str] = {}  # running attempts: pid -> token
        # Report pipes still open: read end -> (attempt pid, bytes so far).
        self.reports: dict[int, tuple[int, bytes]] = {}
        self.report_of: dict[int, int] = {}  # attempt pid -> its report pipe
        self.pidfds: dict[int, int] = {}  # every live child: pid -> pidfd
        self.watched: dict[int, int] = {}  # pidfd -> pid
        # (pid, request pipe, report pipe), oldest first
        self.spares: list[tuple[int, int, int]] = []
        self.buf = b""
        self.orphaned = False
        self.refilling = True
        self.warmer = _Warmer()
        # Set by _SUBREAPER_BOOT: what attempts leave behind is re-parented here.
        self.subreaper = os.environ.pop("JOBSPOOL_SUBREAPER", "") == "1"
        self.killed: set[int] = set()  # adopted processes killed, not reaped yet
        self.limits: Any = None  # jobspool.limits, from the first request with limits
        self.pids_groups: Any = None  # limits.PidsGroups, where a pids cgroup can be made

    def send(self, data: bytes) -> None:
        if self.orphaned:
            return
        try:
            while data:
                data = data[os.write(self.out, data) :]
        except BrokenPipeError:
            self.orphaned = True  # the runner is gone: nobody to report to

    def fork_spare(self) -> None:
        request_r, request_w = os.pipe()
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            _spare_main(request_r, report_w, not self.use_pidfd)
        os.close(request_r)
        os.close(report_w)
        os.set_blocking(report_r, False)
        if self.use_pidfd:
            pidfd = os.pidfd_open(pid)
            self.pidfds[pid] = pidfd
            self.watched[pidfd] = pid
            self.poll.register(pidfd, select.POLLIN)
        self.spares.append((pid, request_w, report_r))

    def want_spare(self) -> bool:
        """True while a batch is being forked (see SPARES_LOW and SPARES_HIGH)."""
        if len(self.spares) <= SPARES_LOW:
            self.refilling = True
        elif len(self.spares) >= SPARES_HIGH:
            self.refilling = False
        return self.refilling

    def retire_spares(self) -> None:
        for _, request_w, report_r in self.spares:
            os.close(request_w)  # EOF: the spare exits; reaped like any child
            os.close(report_r)
        self.spares.clear()

    def drop_spare(self, pid: int) -> None:
        for spare in [s for s in self.spares if s[0] == pid]:
            self.spares.remove(spare)
            os.close(spare[1])
            os.close(spare[2])

    def assign(self, data: bytes) -> None:
        req = RunRequest.from_wire(data)
        token = req.token
        if self.warmer.warm(req.class_path, req.method, req.base_dir):
            self.retire_spares()
            gc.freeze()  # the new imports too: children's collections skip them
        if not self.spares:
            self.fork_spare()
        pid, request_w, report_r = self.spares.pop(0)
        not_applied = self.confine(pid, req) if req.limits else None
        if not_applied is not None:
            self.refuse(pid, token, request_w, report_r, not_applied)
            return
        while data:
            data = data[os.write(request_w, data) :]
        os.close(request_w)
        self.children[pid] = token
        self.reports[report_r] = (pid, b"")
        self.report_of[pid] = report_r
        self.poll.register(report_r, select.POLLIN)
        self.send(b"S\t%s\t%d\n" % (token.encode(), pid))

    def confine(self, pid: int, req: RunRequest) -> str | None:
        """Put a spare under the request's limits before it sees the request
        (see jobspool.limits); the reason if they could not all be set."""
        if not _PRLIMIT:
            return None  # the attempt sets its own
        if self.limits is None:
            from jobspool import limits

            self.limits = limits
            where = limits.pids_hierarchy()
            self.pids_groups = limits.PidsGroups(where) if where else None
        assert req.limits is not None
        processes = req.limits.get("processes")
        grouped = processes is not None and self.pids_groups is not None
        try:
            if grouped:
                self.pids_groups.confine(pid, int(processes or 0))
            self.limits.apply(pid, req.limits, req.log_path, grouped)
        except self.limits.LimitsNotApplied as exc:
            return str(exc)
        return None

    def refuse(self, pid: int, token: str, request_w: int, report_r: int, why: str) -> None:
        """The spare is not handed the job (it exits at end of file, reaped as
        a retired spare); the runner hears the attempt failed, and why."""
        os.close(request_w)
        os.close(report_r)
        report = child.dumps(child.refused("LimitsNotApplied", why)).encode()
        self.send(b"S\t%s\t%d\n" % (token.encode(), pid))
        self.send(b"R\t%s\t%d\t%s\n" % (token.encode(), pid, report))

    def hear(self, fd: int, final: bool = False) -> None:
        """Read an attempt's report pipe; relay its first line, under its token.

        What the attempt sends is not parsed here (the runner decodes it):
        the first line, or the first PIPE_ATOMIC bytes if no line ends
        there, or what was written before the pipe closed. Once relayed, the
        attempt has said its last word: it is ended and its pipe closed.
        """
        pid, buf = self.reports[fd]
        while True:
            try:
                chunk = os.read(fd, child.PIPE_ATOMIC)
            except BlockingIOError:
                chunk = None
            except OSError:
                chunk = b""
            if chunk:
                buf += chunk
            line, newline, _ = buf.partition(b"\n")
            done = bool(newline) or chunk == b"" or len(buf) > child.PIPE_ATOMIC
            if done or chunk is None:
                break
        if not (done or final):
            self.reports[fd] = (pid, buf)
            return
        self.poll.unregister(fd)
        del self.reports[fd]
        del self.report_of[pid]
        os.close(fd)
        if line and pid in self.children:
            token = self.children[pid].encode()
            self.send(b"R\t%s\t%d\t%s\n" % (token, pid, line[: child.PIPE_ATOMIC]))
            kill_group(pid)
            try:  # noqa: SIM105 - contextlib is not loaded in the fork server
                os.kill(pid, _signal.SIGKILL)  # not reaped yet: still our child
            except OSError:
                pass

    def handle_input(self) -> bool:
        chunk = os.read(self.inp, 1 << 16)
        if not chunk:
            return False
        self.buf += chunk
        while True:  # frames: a length line, then that many bytes
            head, newline, rest = self.buf.partition(b"\n")
            if not newline or len(rest) < int(head):
                return True
            size = int(head)
            self.buf = rest[size:]
            self.assign(rest[:size])

    def reap(self) -> None:
        """Reap every child that exited; then clear up what attempts left."""
        reaped = False
        while True:
            got, status = _reap_one(self.children)
            if not got:
                break
            reaped = True
            pidfd = self.pidfds.pop(got, -1)
            if pidfd >= 0:
                self.poll.unregister(pidfd)
                del self.watched[pidfd]
                os.close(pidfd)
            report = self.report_of.get(got)
            if report is not None:  # its report goes before its exit
                self.hear(report, final=True)
            token = self.children.pop(got, None)
            if token is not None:
                code = os.waitstatus_to_exitcode(status)
                self.send(b"X\t%s\t%d\t%d\n" % (token.encode(), got, code))
                self.release(got)
            else:  # a spare that exited, or a process adopted and killed
                self.killed.discard(got)
                self.drop_spare(got)
        if reaped and self.subreaper:
            self.sweep()

    def release(self, pid: int) -> None:
        """An attempt ended: every process still in its pids cgroup goes too."""
        if self.pids_groups is None:
            return
        for member in self.pids_groups.members(pid):
            try:  # noqa: SIM105 - contextlib is not loaded in the fork server
                os.kill(member, _signal.SIGKILL)
            except OSError:
                pass
        self.pids_groups.release(pid)

    def sweep(self, everything: bool = False) -> int:
        """Kill the processes this subreaper adopted that belong to no running
        attempt (all of its children, with ``everything``).

        An adopted process belongs to a running attempt while it is in that
        attempt's session or carries its token (child.ATTEMPT_MARK) in its
        environment. Anything else was orphaned by an attempt that ended or
        escaped its session without a trace: it dies now. Each kill is
        watched, so what the killed process leaves behind (adopted in turn)
        goes at the next sweep. Returns how many children are left.
        """
        kids = _own_children()
        known = self.children.keys() | {s[0] for s in self.spares}
        for pid in kids:
            if pid in self.killed:
                continue
            if everything or (pid not in known and not self.belongs(pid)):
                self.kill_adopted(pid)
        if self.pids_groups is not None:
            self.pids_groups.tidy()
        return len(kids)

    def belongs(self, pid: int) -> bool:
        try:
            if os.getsid(pid) in self.children:
                return True
        except OSError:
            return True  # gone: nothing to do
        token = _attempt_token(pid)
        return token is not None and token in self.children.values()

    def kill_adopted(self, pid: int) -> None:
        try:
            if os.getsid(pid) == pid:  # what it started in its own session too
                os.killpg(pid, _signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(pid, _signal.SIGKILL)  # our child, not reaped: still this process
        except OSError:
            return
        self.killed.add(pid)
        if self.use_pidfd and pid not in self.pidfds:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                return
            self.pidfds[pid] = pidfd
            self.watched[pidfd] = pid
            self.poll.register(pidfd, select.POLLIN)

    def shutdown(self) -> None:
        idle = [pid for pid, _, _ in self.spares]
        self.retire_spares()
        for pid in idle:  # nothing to lose in a spare; no need to wait for it to notice
            try:  # noqa: SIM105 - contextlib is not loaded in the fork server
                os.kill(pid, _signal.SIGKILL)
            except OSError:
                pass
        for pid in list(self.children):
            if self.subreaper:  # the sweeps below take the rest as it comes to us
                kill_group(pid)
                try:  # noqa: SIM105
                    os.kill(pid, _signal.SIGKILL)
                except OSError:
                    pass
            else:
                kill_tree(pid)
        try:  # noqa: SIM105
            self.poll.unregister(self.inp)  # at EOF it would always be ready
        except KeyError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.reap()
            left = self.sweep(everything=True) if self.subreaper else 0
            if not (left or self.children or self.pidfds):
                break
            self.poll.poll(10)  # a pidfd (or the SIGCHLD pipe) wakes it
        if self.pids_groups is not None:
            self.pids_groups.close()

    def serve(self) -> None:
        try:
            self._loop()
        finally:
            self.shutdown()  # whatever ended the loop, no attempt outlives us

    def _loop(self) -> None:
        while not self.orphaned:
            # A batch of spares is forked one per turn, so that a request
            # that arrives meanwhile is served first.
            want = self.want_spare()
            ready = self.poll.poll(0 if want else None)
            if not ready and want:
                self.fork_spare()
            for fd, _ in ready:
                if fd == self.inp:
                    if not self.handle_input():
                        return
                elif fd == self.wake:
                    try:  # noqa: SIM105
                        os.read(fd, 4096)
                    except BlockingIOError:
                        pass
                    self.reap()
                elif fd in self.reports:
                    self.hear(fd)
                elif fd in self.watched:
                    self.reap()


def _rehearse(times: int = 20) -> None:
    """Run a no-op attempt here a few times before any fork.

    CPython specialises a function's bytecode in place during its first
    calls, and allocators warm up their pools; done here once, children
    inherit the result instead of each writing (and copying) those pages.
    """
    request = RunRequest(
        token="rehearsal",  # noqa: S106  (an attempt token, not a secret)
        job_id="rehearsal",
        job="Rehearsal",
        method="run",
        params=[],
        class_path="jobspool.child.Rehearsal",
        attempt=1,
        max_attempts=1,
        base_dir=sys.path[0] or os.getcwd(),
        log_path=os.devnull,
        report_path=os.devnull,
    ).to_wire()
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        for _ in range(times):
            child.run(RunRequest.from_wire(request), sink)
    finally:
        os.close(sink)


def zygote_main() -> None:
    # Warm the imports every attempt needs, once, before any fork.
    import jobspool.binding
    import jobspool.child
    import jobspool.context  # noqa: F401

    _rehearse()
    # Objects that exist now are never collected in the children, so the
    # collector does not touch (and copy) their pages after each fork.
    gc.freeze()

    zygote = _Zygote()
    subreaper = b"true" if zygote.subreaper else b"false"
    zygote.send(b'{"ready": true, "pid": %d, "subreaper": %s}\n' % (os.getpid(), subreaper))
    zygote.serve()


if __name__ == "__main__":
    zygote_main()
