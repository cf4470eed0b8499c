"""The fork server ("zygote"): the process that forks every attempt.

The runner starts it (``executor.ForkServer``, through the start-up
trampoline there) as ``python -P -m jobspool.zygote`` and speaks to it in
the protocol written down in ``executor``'s docstring. It imports the
engine, rehearses a no-op attempt and freezes the collector's objects once,
then forks one child per attempt from a copy of itself that is small and
warm: spares forked ahead of need, each waiting for one request, and job
classes imported ahead (``_Warmer``) so each fork inherits them. It is
single-threaded, and imports only what the interpreter has loaded anyway:
every attempt is a fork of it.

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

The pipes. Only the zygote writes to the runner's pipe: each attempt gets
a pipe of its own for its report (one JSON line when it fits in one atomic
write, see child.send_report), and the zygote relays the first line that
comes on it under the token it gave that attempt, so no job can speak for
another or break the framing. A report is an attempt's last word: the
zygote ends the process once it has relayed it, and always relays it before
the "X" line.

Pool workers (``isolation: pool``, see ``poolworker``). A pooled request
(one with ``pool`` set and no limits: a live process cannot lift limits
again, so jobs with limits always get a process per attempt) goes to a
pool worker: a child forked like a spare that, instead of exiting after its
attempt, waits for the next. One pool serves every pooled job; it grows to
the most attempts that ever ran at once, and idle workers are reused
last-in first-out. Once a worker says "done", the zygote sweeps what the
attempt left behind (adopted grandchildren: the worker runs no attempt now,
so nothing in its session is spared), relays the report (it holds it until
"done", so the next request can only reach an idle worker) and sends ``D``.
When the zygote re-imports a job module that changed on disk, idle workers
are retired (their socket closed) and busy ones when their attempt is
done, so an edited module is picked up by new workers. A worker that dies
without a report is its attempt's crash. Timeout and cancel of a pooled
attempt (``K<token>``): the zygote kills the worker and its group only
while that worker still runs that attempt (its pid may already run the
next one), and the next request gets a fresh worker. Pooling needs the
subreaper (a worker outlives its attempts, so their leftovers are found by
adoption, not by group): without it pooled requests run one process per
attempt.
"""

from __future__ import annotations

import gc
import os
import select
import sys
import time

from jobspool import child
from jobspool.child import EXIT_INTERNAL, RunRequest
from jobspool.executor import kill_group, kill_tree
from jobspool.forked import become_child, own_children, print_crash
from jobspool.poolworker import pool_main

# Every attempt is a fork of this process: see executor for why the top
# level imports only what the interpreter has loaded anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The C-level signal module: the public ``signal`` module imports enum (half
# a megabyte), and converting to and from enums costs a forked child ~80
# copied pages.
_signal: Any = __import__("_signal")


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


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
        become_child((req_fd, report_fd), sigchld)
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
        print_crash()
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
        self.reloads = 0  # how many times job modules were dropped as changed on disk

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

        self.reloads += 1
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
        # Set by executor._SUBREAPER_BOOT: what attempts leave behind is re-parented here.
        self.subreaper = os.environ.pop("JOBSPOOL_SUBREAPER", "") == "1"
        self.killed: set[int] = set()  # adopted processes killed, not reaped yet
        self.limits: Any = None  # jobspool.limits, from the first request with limits
        self.pids_groups: Any = None  # limits.PidsGroups, where a pids cgroup can be made
        # Pool workers (isolation: pool): pid -> (its socket, the generation
        # it was forked in); idle ones, most recently used last; a busy one's
        # token is in children like any attempt's, its report pipe here.
        self.workers: dict[int, tuple[Any, int]] = {}
        self.worker_of: dict[int, int] = {}  # socket fd -> pid
        self.idle: list[int] = []
        self.pool_reports: dict[int, int] = {}  # pid -> read end of its attempt's report pipe
        self.generation = 0  # the warmer's reloads when the newest workers were forked
        self.sk: Any = None  # the _socket module, from the first pooled request

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
        self.watch(pid)
        self.spares.append((pid, request_w, report_r))

    def watch(self, pid: int) -> None:
        if self.use_pidfd:
            pidfd = os.pidfd_open(pid)
            self.pidfds[pid] = pidfd
            self.watched[pidfd] = pid
            self.poll.register(pidfd, select.POLLIN)

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
        if self.warmer.reloads != self.generation:
            # A job module changed on disk: pool workers hold the old code.
            # Idle ones go now, busy ones when their attempt is done.
            self.generation = self.warmer.reloads
            for pid in list(self.idle):
                self.retire_worker(pid)
        if req.pool is not None and not req.limits and self.subreaper:
            self.assign_pooled(token, data)
            return
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

    # ------------------------------------------------------------ pool workers

    def fork_worker(self) -> int:
        if self.sk is None:
            import _socket  # only a spool that pools pays for it

            self.sk = _socket
        ours, theirs = self.sk.socketpair(self.sk.AF_UNIX, self.sk.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            pool_main(theirs.fileno(), not self.use_pidfd)
        theirs.close()
        self.watch(pid)
        self.workers[pid] = (ours, self.generation)
        self.worker_of[ours.fileno()] = pid
        self.poll.register(ours.fileno(), select.POLLIN)
        return pid

    def assign_pooled(self, token: str, data: bytes) -> None:
        """Hand the request to an idle pool worker (a fresh one if none is),
        with a report pipe of this attempt's own."""
        while True:
            pid = self.idle.pop() if self.idle else self.fork_worker()
            report_r = self.hand_over(pid, data)
            if report_r >= 0:
                break
            self.retire_worker(pid)  # it died while idle: reaped as it comes
        self.children[pid] = token
        self.pool_reports[pid] = report_r
        self.send(b"S\t%s\t%d\n" % (token.encode(), pid))

    def hand_over(self, pid: int, data: bytes) -> int:
        """Send the request with the write end of a new report pipe; the
        read end, or -1 if the worker cannot take it."""
        sock, sk = self.workers[pid][0], self.sk
        report_r, report_w = os.pipe()
        try:
            fd = report_w.to_bytes(4, sys.byteorder)
            sock.sendmsg([b"%d\n" % len(data)], [(sk.SOL_SOCKET, sk.SCM_RIGHTS, fd)])
            sock.sendall(data)
        except OSError:
            os.close(report_r)
            return -1
        finally:
            os.close(report_w)  # the worker holds it now: EOF when it closes its copy
        os.set_blocking(report_r, False)
        return report_r

    def worker_said(self, fd: int) -> None:
        """A pool worker's word: its attempt is done (its exit code), and it
        waits for the next. Its leftovers die, then its report is relayed,
        then ``D``: the attempt ended as an exit with that code would."""
        pid = self.worker_of[fd]
        try:
            word = self.workers[pid][0].recv(64)
        except OSError:
            word = b""
        if not word:  # exiting: reaped through its pidfd (or SIGCHLD)
            self.unwatch_socket(fd)
            return
        token = self.children.pop(pid, None)
        if token is None:
            return  # not running anything: nothing it says counts
        if self.subreaper:
            self.sweep()  # it runs nothing now: all it left behind goes
        self.relay_pooled(pid, token)
        code = int(word) if word.isdigit() else EXIT_INTERNAL
        self.send(b"D\t%s\t%d\t%d\n" % (token.encode(), pid, code))
        if self.workers[pid][1] == self.generation:
            self.idle.append(pid)
        else:  # forked before job code was imported afresh
            self.retire_worker(pid)

    def relay_pooled(self, pid: int, token: str) -> None:
        """Relay the first line on the attempt's report pipe, if it sent one."""
        fd = self.pool_reports.pop(pid, -1)
        if fd < 0:
            return
        buf = b""
        while b"\n" not in buf and len(buf) <= child.PIPE_ATOMIC:
            try:
                chunk = os.read(fd, child.PIPE_ATOMIC)
            except OSError:  # nothing more now (BlockingIOError) or broken
                break
            if not chunk:
                break
            buf += chunk
        os.close(fd)
        line = buf.partition(b"\n")[0]
        if line:
            self.send(b"R\t%s\t%d\t%s\n" % (token.encode(), pid, line[: child.PIPE_ATOMIC]))

    def unwatch_socket(self, fd: int) -> None:
        try:  # noqa: SIM105 - contextlib is not loaded in the fork server
            self.poll.unregister(fd)
        except KeyError:
            pass

    def retire_worker(self, pid: int) -> None:
        """Forget a pool worker; closing its socket makes a live one exit."""
        sock, _ = self.workers.pop(pid)
        del self.worker_of[sock.fileno()]
        self.unwatch_socket(sock.fileno())
        sock.close()
        if pid in self.idle:
            self.idle.remove(pid)

    def stop(self, token: str) -> None:
        """The runner's kill of an attempt (timeout, cancel): its process and
        group, only while it still runs that attempt. A pool worker dies
        with it and a fresh one takes the next request."""
        for pid, running in self.children.items():
            if running == token:
                kill_group(pid)
                try:  # noqa: SIM105
                    os.kill(pid, _signal.SIGKILL)  # not reaped yet: still our child
                except OSError:
                    pass
                return

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
            if newline and head[:1] == b"K":  # a kill: "K<token>"
                self.buf = rest
                self.stop(head[1:].decode("utf-8", "replace"))
                continue
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
            if got in self.workers:
                if got in self.children:
                    self.relay_pooled(got, self.children[got])
                self.retire_worker(got)
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
        kids = own_children()
        known = self.children.keys() | self.workers.keys() | {s[0] for s in self.spares}
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
        idle = [pid for pid, _, _ in self.spares] + self.idle
        self.retire_spares()
        for pid in list(self.idle):
            self.retire_worker(pid)
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
                elif fd in self.worker_of:
                    self.worker_said(fd)
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
