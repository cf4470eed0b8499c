"""Job classes that misbehave on purpose: they attack the runner from inside an attempt.

Each leaves evidence on disk (a pid, a count) so a test can check what the
runner let it do. ``HOSTILE_JOBS`` is the allow-list entry for each.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOSTILE_JOBS: dict[str, Any] = {
    name: {
        "class": f"tests.support.hostile_jobs.{name}",
        "allowed_methods": methods,
        "retry": {"max_attempts": 1},
    }
    for name, methods in {
        "Forger": ["speak"],
        "Printer": ["say", "flood"],
        "Escaper": ["escape"],
        "Hog": ["spin", "allocate", "open_files", "fork"],
    }.items()
}


def _pipes() -> list[int]:
    """Every descriptor from 3 up that is a pipe: where a report could travel."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd < 3:
            continue
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                found.append(fd)
        except OSError:
            continue
    return found


def _wait_for(path: str, limit: float = 30.0) -> str:
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {limit}s")
        time.sleep(0.02)
    return Path(path).read_text()


class Forger:
    """Writes a line to every pipe it holds: a report for the attempt named in
    ``token_file`` once it appears, or ``raw`` bytes as they are."""

    def speak(self, token_file: str = "", raw: str = "") -> str:
        if token_file:
            token = _wait_for(token_file).strip()
            line = f'{{"report": "{token}", "pid": {os.getpid()}, '
            line += '"outcome": "succeeded", "result": "forged"}\n'
            data = line.encode()
        else:
            data = raw.encode()
        for fd in _pipes():
            try:  # noqa: SIM105 - a pipe closed under us is no evidence either way
                os.write(fd, data)
            except OSError:
                pass
        return "spoke"


class Printer:
    def say(self, text: str) -> str:
        print(text, flush=True)
        return text

    def flood(self, total: int, count_file: str) -> int:
        """Print ``total`` bytes in 64 KiB lines; ``count_file`` holds how many got out."""
        chunk = "x" * (64 * 1024 - 1) + "\n"
        written = 0
        while written < total:
            sys.stdout.write(chunk)
            sys.stdout.flush()
            written += len(chunk)
            Path(count_file).write_text(str(written))
        return written


class Escaper:
    """Starts a grandchild that leaves the attempt's session (double fork plus
    setsid) and sleeps for minutes; its pid goes to ``pidfile``."""

    def escape(self, pidfile: str, seconds: float = 60.0) -> str:
        code = (
            "import os, sys, time\n"
            "if os.fork():\n"
            "    os._exit(0)\n"
            "os.setsid()\n"
            "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
            "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
            "time.sleep(600)\n"
        )
        # Without the attempt's marker in its environment: nothing but the
        # process tree can tie it to the attempt.
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSPOOL")}
        subprocess.run([sys.executable, "-c", code, pidfile], env=env, check=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return "escaped"


class Hog:
    """Uses more of a resource than a limit allows; returns what it got."""

    def spin(self, cpu_seconds: float) -> float:
        start = time.process_time()
        while time.process_time() - start < cpu_seconds:
            pass
        return time.process_time() - start

    def allocate(self, megabytes: int) -> int:
        block = bytearray(megabytes << 20)
        return len(block) >> 20

    def open_files(self, count: int) -> int:
        held = [os.open(os.devnull, os.O_RDONLY) for _ in range(count)]
        return len(held)

    def fork(self, count: int, pidfile: str) -> int:
        """Fork ``count`` sleeping children (their pids appended to ``pidfile``)."""
        started = 0
        try:
            for _ in range(count):
                pid = os.fork()
                if pid == 0:
                    time.sleep(120)
                    os._exit(0)
                started += 1
                with open(pidfile, "a") as fh:
                    fh.write(f"{pid}\n")
        finally:
            with open(pidfile + ".count", "w") as fh:
                fh.write(str(started))
        return started
