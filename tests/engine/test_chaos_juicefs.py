"""A short chaos run on a real distributed filesystem must keep every invariant.

The chaos harness (bench/chaos.py) on two hosts, each on its own FUSE mount
of one JuiceFS volume (tests/support/juicefs.py): host-a on mount A, host-b
on mount B, with JuiceFS's default 1 s kernel caches, so each host sees the
other's changes late. Host A runs two runners, host B one: the harness acts
on a runner (kill, pause, stop) only while another one is up, and with two
in all, one is mostly down or restarting and pauses hardly ever come. No
filesystem event crosses from one mount to the other, so the runners
rescan only (``--no-watch``); the harness submits and reads through mount
A. About 20 s of chaos (runner SIGKILLs and restarts, job SIGKILLs, pauses
past the lease, SIGTERMs), then a drain. The harness exits non-zero when a
job is lost, has two terminal copies, never drains, completed without
running, or when a process of the run outlives it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.juicefs import two_hosts

SECONDS = 20
# Chaos, the drain and the runners' stops, with room to spare on a busy machine.
TIMEOUT = SECONDS + 80


@pytest.mark.timeout(TIMEOUT + 30)
def test_short_chaos_run_on_two_juicefs_mounts_keeps_every_invariant(tmp_path: Path) -> None:
    with two_hosts(tmp_path / "juicefs") as hosts:
        cmd = [
            sys.executable,
            str(REPO / "bench" / "chaos.py"),
            "--spool",
            str(hosts.a),
            "--spool",
            str(hosts.b),
            "--hosts",
            "host-a,host-b",
            "--runners",
            "3",
            "--no-watch",
            "--seconds",
            str(SECONDS),
            "--seed",
            "20261207",
            "--initial-jobs",
            "40",
            "--rate",
            "3",
            "--drain-seconds",
            "60",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "RESULT: PASS" in out.stdout, text
    for figure in ("lost", "duplicate terminal", "not drained", "orphan processes"):
        assert re.search(rf"^{figure}:\s+0$", out.stdout, re.MULTILINE), (figure, text)
    # Runners 0 and 2 on mount A as host-a, runner 1 on mount B as host-b.
    assert re.search(r"hosts host-a,host-b,host-a;", out.stdout), text
    # The run did inflict chaos: at least one runner kill and one pause.
    kills = re.search(r"runner kills (\d+), job kills (\d+), pauses (\d+)", out.stdout)
    assert kills is not None, text
    assert int(kills.group(1)) >= 1 and int(kills.group(3)) >= 1, text
