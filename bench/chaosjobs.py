"""Jobs the chaos harness submits: each run leaves one line in a ledger.

The line is written first, in one O_APPEND write, so a run that is killed
later still counts as a run: the ledger measures at-least-once delivery.
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench.crashjobs import Ledger

# Long enough to outlive the whole harness: a grandchild still alive at the
# end means the engine failed to kill an attempt's process tree.
GRANDCHILD_SECONDS = 900
# Printed to the job's log with the grandchild's pid, so a leftover can be traced.
GRANDCHILD_NOTE = "grandchild pid "


class SlowLedger:
    """Records the run, optionally starts a grandchild, then sleeps a while."""

    def record(self, ledger: str, seconds: float, spawn: bool = False) -> str:
        job_id = Ledger().record(ledger)
        if spawn:
            code = f"import time; time.sleep({GRANDCHILD_SECONDS})"
            child = subprocess.Popen([sys.executable, "-c", code])
            print(f"{GRANDCHILD_NOTE}{child.pid}", flush=True)
        time.sleep(seconds)
        return job_id
