"""Jobs for the pooled-mode tests (isolation: pool); each leaves evidence on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from jobspool import current_job, report_progress


class Pooled:
    """Says which process ran it, prints its id, and can misbehave on request."""

    def pid(self, tag: str = "") -> int:
        ctx = current_job()
        print(f"out of {ctx.id if ctx else None} {tag}")
        print(f"err of {ctx.id if ctx else None} {tag}", file=sys.stderr)
        return os.getpid()

    def hang(self, pidfile: str, childfile: str) -> None:
        """Start a child that sleeps, then sleep past any timeout."""
        kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        Path(childfile).write_text(str(kid.pid))
        Path(pidfile).write_text(str(os.getpid()))
        time.sleep(300)

    def leave(self, childfile: str, detach: bool = False) -> int:
        """Start a child that outlives the job unless it is killed; return at once.

        With ``detach`` the child double-forks into its own session, so only
        the fork server (a subreaper) can still find it."""
        if detach:
            code = (
                "import os, sys, time\n"
                "if os.fork(): os._exit(0)\n"
                "os.setsid()\n"
                "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
                "time.sleep(300)\n"
            )
            subprocess.run([sys.executable, "-c", code, childfile], check=True)
            deadline = time.monotonic() + 20
            while not Path(childfile).exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # it must be running before the attempt ends
        else:
            kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            Path(childfile).write_text(str(kid.pid))
        return os.getpid()

    def die(self, how: str = "exit") -> None:
        if how == "exit":
            os._exit(3)
        os.kill(os.getpid(), 9)

    def grow(self, megabytes: int) -> int:
        """Keep memory alive in the worker past the attempt (a module-level leak)."""
        _HOARD.append(bytearray(megabytes << 20))
        return os.getpid()

    def thread(self) -> int:
        """Leave a thread running in the worker after the job returns."""
        threading.Thread(target=time.sleep, args=(300,), daemon=True).start()
        return os.getpid()

    def big(self, size: int) -> str:
        """A result too big for the report pipe: the report goes to a file."""
        return "b" * size

    def progress(self) -> int:
        report_progress(0.5, "half way")
        return os.getpid()

    def flood(self, size: int) -> int:
        """Print far more than the output cap."""
        for _ in range(size // 4096):
            sys.stdout.write("x" * 4096)
            sys.stdout.flush()  # one write each: the one past the cap is stopped
        return os.getpid()

    def pipes(self) -> list[str]:
        """The pipes a program the job runs inherits (close_fds=False)."""
        code = (
            "import os\n"
            "for fd in os.listdir('/proc/self/fd'):\n"
            "    try:\n"
            "        target = os.readlink('/proc/self/fd/' + fd)\n"
            "    except OSError:\n"
            "        continue\n"
            "    if target.startswith(('pipe:', 'socket:')):\n"
            "        print(fd, target)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], close_fds=False, stdout=subprocess.PIPE, check=True
        )
        return out.stdout.decode().split("\n")[:-1]

    def ledger(self, path: str, pause: float = 0.0) -> str:
        """Append "<id> <attempt>" in one O_APPEND write, then take a while."""
        ctx = current_job()
        line = f"{ctx.id if ctx else None} {ctx.attempt if ctx else 0}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        time.sleep(pause)
        return ctx.id if ctx else ""


_HOARD: list[bytearray] = []
