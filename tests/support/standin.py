"""A stand-in for a runner on another host whose wall clock is skewed.

    python -m tests.support.standin SPOOL RUNNER_ID HOST SKEW_SECONDS

It writes ``runners/<RUNNER_ID>.json`` the way a runner does (tmp file, then
rename) every 0.1 s, with ``wall`` set to this machine's time plus
SKEW_SECONDS. It starts *beating* (the ``beat`` counter rises); SIGUSR1
makes it *hang*: it keeps rewriting the file with a fresh skewed ``wall``
but the same ``beat``, like a runner whose loop is stuck while something
else still touches its heartbeat. SIGTERM ends it.

Only a process can play a host whose clock is an hour off without changing
this machine's clock; everything else in the liveness tests is a real runner.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

PERIOD = 0.1


def main(argv: list[str]) -> int:
    spool, runner_id, host, skew = Path(argv[0]), argv[1], argv[2], float(argv[3])
    folder = spool / "runners"
    folder.mkdir(parents=True, exist_ok=True)
    hung = False

    def hang(_sig: int, _frame: FrameType | None) -> None:
        nonlocal hung
        hung = True

    signal.signal(signal.SIGUSR1, hang)
    started = datetime.now(UTC) + timedelta(seconds=skew)
    beat = 0
    while True:
        if not hung:
            beat += 1
        body = {
            "runner": runner_id,
            "host": host,
            "pid": os.getpid(),
            "pid_created": None,
            "started_at": started.isoformat(),
            "beat": beat,
            "wall": (datetime.now(UTC) + timedelta(seconds=skew)).isoformat(),
            "jobs": [],
        }
        tmp = folder / f".{runner_id}.{time.monotonic_ns()}.tmp"
        tmp.write_text(json.dumps(body))
        os.replace(tmp, folder / f"{runner_id}.json")
        time.sleep(PERIOD)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
