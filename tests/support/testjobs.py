"""Job classes used by the test suite; each leaves evidence on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.crashjobs import Ledger  # the power-loss harness runs the same job
from jobspool import Retry, current_job, report_progress


def _ctx_id() -> str:
    ctx = current_job()
    return ctx.id if ctx else "inline"


class Marker:
    """Writes a marker file: proof that the job ran."""

    def touch(self, path: str, text: str = "ran") -> str:
        Path(path).write_text(text)
        return text


class Flaky:
    """Fails until it has been called ``fail_times`` times, then succeeds."""

    def run(self, counter: str, fail_times: int) -> int:
        path = Path(counter)
        calls = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(calls))
        with open(f"{counter}.times", "a") as fh:
            fh.write(f"{time.time()}\n")
        if calls <= fail_times:
            raise RuntimeError(f"planned failure {calls} of {fail_times}")
        return calls

    def ask_retry(self, counter: str, delay: float) -> int:
        path = Path(counter)
        calls = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(calls))
        if calls == 1:
            raise Retry(delay=delay, reason="not ready yet")
        return calls


class BadInput(ValueError):
    pass


class Failing:
    def bad(self, message: str) -> None:
        raise BadInput(message)

    def crash(self, how: str = "kill") -> None:
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)


class Sleeper:
    """Sleeps; optionally spawns a grandchild that sleeps too (pid written)."""

    def sleep(self, seconds: float, pidfile: str = "", started: str = "") -> str:
        if pidfile:
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            Path(pidfile).write_text(str(child.pid))
        if started:
            Path(started).write_text(str(os.getpid()))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            print(f"tick {time.monotonic():.2f}", flush=True)
            time.sleep(0.05)
        return "slept"


class Typed:
    def add(self, a: int, b: int = 0) -> int:
        return a + b

    def greet(self, name: str, *, loud: bool = False) -> str:
        return name.upper() if loud else name


class Progressing:
    def steps(self, n: int, pause: float = 0.0) -> int:
        for i in range(n):
            report_progress((i + 1) / n, f"step {i + 1}")
            time.sleep(pause)
        return n


class Odd:
    def weird(self) -> object:
        return {1, 2, 3}


class Guarded:
    """One method the test allow-list permits and one it leaves out; both leave a marker."""

    def touch(self, path: str) -> str:
        Path(path).write_text("touched")
        return "touched"

    def sneak(self, path: str) -> str:
        Path(path).write_text("sneaked")
        return "sneaked"


class Chatty:
    """Writes to stdout, to stderr and through a grandchild process."""

    def speak(self, out: str, err: str) -> str:
        print(out, flush=True)
        print(err, file=sys.stderr, flush=True)
        code = f"print({out!r} + ' from a grandchild', flush=True)"
        subprocess.run([sys.executable, "-c", code], check=True)
        return "spoke"


class Gate:
    """Writes its pid to ``started``, then returns once the file ``release`` exists.

    ``padding`` only makes the job record big (for disk-pressure tests): the
    record is rewritten at finish, while the attempt's report stays small.
    """

    def wait(self, started: str, release: str, padding: str = "", limit: float = 60.0) -> str:
        Path(started).write_text(str(os.getpid()))
        deadline = time.monotonic() + limit
        while not Path(release).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{release} did not appear within {limit}s")
            time.sleep(0.02)
        return f"released after {len(padding)} bytes of padding"


class RunnerKiller:
    """A poison job: records its run in a ledger, then SIGKILLs its own runner.

    The attempt's parent is the fork server, whose parent is the runner (with
    the spawn launcher the parent is the runner itself). Anything else is
    refused, so a mistake can never kill the test process.
    """

    def strike(self, ledger: str) -> str:
        import psutil

        Ledger().record(ledger)
        target = psutil.Process(os.getppid())
        if "jobspool.zygote" in " ".join(target.cmdline()):
            parent = target.parent()
            if parent is None:
                raise RuntimeError("the fork server has no parent")
            target = parent
        if "jobspool.cli" not in " ".join(target.cmdline()):
            raise RuntimeError(f"refusing to kill {target.cmdline()}: not a runner")
        os.kill(target.pid, signal.SIGKILL)
        time.sleep(60)  # the fork server kills this process once its runner is gone
        return "survived"


class Lingerer:
    """Writes ``<dir>/<attempt>.pid``; attempt 1 sleeps ``first`` seconds, later ones ``later``.

    With ``spawn`` it first starts a grandchild that sleeps for minutes and
    writes its pid to ``<dir>/<attempt>.grandchild.pid``.
    """

    def linger(self, started_dir: str, first: float, later: float, spawn: bool = False) -> int:
        ctx = current_job()
        attempt = ctx.attempt if ctx else 0
        if spawn:
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            Path(started_dir, f"{attempt}.grandchild.pid").write_text(str(child.pid))
        Path(started_dir, f"{attempt}.pid").write_text(str(os.getpid()))
        deadline = time.monotonic() + (first if attempt == 1 else later)
        while time.monotonic() < deadline:
            time.sleep(0.02)
        return attempt
