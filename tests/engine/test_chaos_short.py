"""A short run of the chaos harness (bench/chaos.py) must keep every invariant.

About 25 s of chaos (runner SIGKILLs and restarts, job SIGKILLs, pauses past
the lease, SIGTERMs) on three runners of two hosts, then a drain. The
harness exits non-zero when a job is lost, has two terminal copies, never
drains, completed without running, or when a process of the run outlives it.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO

SECONDS = 25


def test_short_chaos_run_keeps_every_invariant() -> None:
    cmd = [
        sys.executable,
        str(REPO / "bench" / "chaos.py"),
        "--seconds",
        str(SECONDS),
        "--seed",
        "20261129",
        "--initial-jobs",
        "60",
        "--rate",
        "4",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 150, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "RESULT: PASS" in out.stdout, text
    for figure in ("lost", "duplicate terminal", "not drained", "orphan processes"):
        assert re.search(rf"^{figure}:\s+0$", out.stdout, re.MULTILINE), (figure, text)
    # The run did inflict chaos: at least one runner kill and one pause.
    kills = re.search(r"runner kills (\d+), job kills (\d+), pauses (\d+)", out.stdout)
    assert kills is not None, text
    assert int(kills.group(1)) >= 1 and int(kills.group(3)) >= 1, text
