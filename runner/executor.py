"""Start and kill attempt processes; all platform-specific process code.

One process per attempt, always. On POSIX a *fork server* (a "zygote") is
started once with ``subprocess`` (fork+exec, so it never inherits the
runner's threads), imports the engine, and then forks one child per attempt:
about 1 ms instead of 8 ms for a fresh interpreter. Each child calls
``setsid`` so its whole tree can be killed as a process group. On Windows,
where fork does not exist, each attempt is a fresh ``python -m runner.child``
in a new process group. ``start_method`` picks either on POSIX too.

The zygote kills every child it started when its pipe from the runner closes,
so a runner that dies (even by SIGKILL) leaves no job processes behind.

Protocol with the zygote: one JSON object per line. Runner -> zygote:
a RunRequest. Zygote -> runner: ``{"started": token, "pid": n}`` right after
the fork, then ``{"exited": token, "pid": n, "code": rc}`` when it reaps the
child (rc < 0 is the signal number, as in subprocess).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

import psutil

from runner.child import EXIT_INTERNAL, RunRequest

POSIX = os.name == "posix"
Post = Callable[[tuple[Any, ...]], None]


class Launcher(Protocol):
    def start(self, req: RunRequest) -> int: ...
    def close(self) -> None: ...


def kill_tree(pid: int) -> list[int]:
    """Kill pid, its process group (POSIX) and every descendant psutil can see."""
    procs: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    if POSIX:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return [p.pid for p in procs]


def kill_group(pgid: int) -> None:
    """After an attempt ended, its leftover background children go too."""
    if POSIX:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


def process_alive(pid: int, create_time: float | None = None) -> bool:
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 0.5:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _engine_env() -> dict[str, str]:
    env = dict(os.environ)
    engine_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (engine_root, env.get("PYTHONPATH")) if p)
    return env


class ForkServer:
    """Runner side of the zygote."""

    def __init__(self, post: Post) -> None:
        self._post = post
        self._started: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner.executor"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_engine_env(),
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin: IO[bytes] = self.proc.stdin
        self._reader = threading.Thread(
            target=self._read, args=(self.proc.stdout,), name="jobspool-zygote", daemon=True
        )
        self._reader.start()
        # Wait until the zygote has imported the engine, so the first attempt
        # does not pay for interpreter start-up.
        if self._started.get(timeout=60).get("started") != "ready":
            raise RuntimeError("the fork server failed to start")

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            msg = json.loads(line)
            if "started" in msg:
                self._started.put(msg)
            else:
                self._post(("exit", msg["exited"], msg["code"]))
        self._started.put({"started": None, "pid": -1})
        self._post(("launcher_gone",))

    def start(self, req: RunRequest) -> int:
        self._stdin.write(req.model_dump_json().encode() + b"\n")
        self._stdin.flush()
        msg = self._started.get(timeout=30)
        if msg["started"] != req.token:
            raise RuntimeError("the fork server stopped")
        return int(msg["pid"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()


class Spawner:
    """One fresh interpreter per attempt (Windows, or start_method: spawn)."""

    def __init__(self, post: Post) -> None:
        self._post = post
        self._threads: list[threading.Thread] = []

    def start(self, req: RunRequest) -> int:
        request_path = Path(req.report_path + ".request")
        request_path.write_bytes(req.model_dump_json().encode())
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        with open(req.log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "runner.child", str(request_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=POSIX,
                creationflags=flags,
                env=_engine_env(),
            )
        waiter = threading.Thread(
            target=self._wait, args=(proc, req.token, request_path), daemon=True
        )
        waiter.start()
        self._threads.append(waiter)
        return proc.pid

    def _wait(self, proc: subprocess.Popen[bytes], token: str, request_path: Path) -> None:
        code = proc.wait()
        with contextlib.suppress(OSError):
            request_path.unlink()
        self._post(("exit", token, code))

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()


def make_launcher(start_method: str, post: Post) -> Launcher:
    if start_method == "spawn" or not hasattr(os, "fork"):
        return Spawner(post)
    return ForkServer(post)


# ---------------------------------------------------------------- zygote side


def _child_main(req_data: dict[str, Any], private: tuple[int, ...]) -> None:
    """In the forked child: own session, log as stdout/stderr, run, exit."""
    code = EXIT_INTERNAL
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        for fd in private:
            os.close(fd)
        req = RunRequest.model_validate(req_data)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        log = os.open(req.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(devnull)
        from runner import child

        code = child.run(req)
    except BaseException:  # noqa: BLE001 - report anything, then leave
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
    finally:
        os._exit(code)


class _Zygote:
    def __init__(self) -> None:
        # Keep the pipes on private fds; 0 and 1 become harmless for children.
        self.inp = os.dup(0)
        self.out = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(2, 1)
        os.close(devnull)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides when we stop
        self.children: dict[int, str] = {}
        self.buf = b""

    def send(self, msg: dict[str, Any]) -> None:
        data = json.dumps(msg).encode() + b"\n"
        while data:
            data = data[os.write(self.out, data) :]

    def handle_input(self) -> bool:
        chunk = os.read(self.inp, 1 << 16)
        if not chunk:
            return False
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            if line.strip():
                req = json.loads(line)
                private = (self.inp, self.out, self.wake_r, self.wake_w)
                pid = os.fork()
                if pid == 0:
                    _child_main(req, private)
                self.children[pid] = req["token"]
                self.send({"started": req["token"], "pid": pid})
        return True

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            token = self.children.pop(pid, None)
            if token is not None:
                kill_group(pid)
                self.send({"exited": token, "pid": pid, "code": os.waitstatus_to_exitcode(status)})

    def shutdown(self) -> None:
        for pid in list(self.children):
            kill_tree(pid)
        deadline = time.monotonic() + 5
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)

    def serve(self) -> None:
        import select

        while True:
            readable, _, _ = select.select([self.inp, self.wake_r], [], [])
            if self.wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
            self.reap()
            if self.inp in readable and not self.handle_input():
                self.shutdown()
                return


def zygote_main() -> None:
    # Warm the imports every attempt needs, once, before any fork.
    import pydantic  # noqa: F401

    import runner.binding
    import runner.child
    import runner.context  # noqa: F401

    with contextlib.suppress(BrokenPipeError):
        zygote = _Zygote()
        zygote.send({"started": "ready", "pid": os.getpid()})
        zygote.serve()


if __name__ == "__main__":
    zygote_main()
