"""A runner started on a large backlog: time to its first job, and its memory.

    python bench/bench_backlog.py [--jobs 100000] [--repeat 3]

Fills pending/ of a fresh spool with --jobs NoOp jobs (priority 0) and one
Mark job of priority 1, submitted last: the order rules say it runs first.
Then starts ``jobspool runner`` and measures, from the moment it is
launched, when the Mark job's code began to run, and the runner's resident
memory (its own process, and its fork server) once it has read the whole
backlog. The runner is stopped with SIGTERM after that; nothing is deleted
while it runs. Then the same again on the same spool ("restart"): another
Mark job of priority 1 is submitted and a new runner started, which finds
the order snapshot the first one left (jobspool.pendingorder). Prints one
line per figure, medians of --repeat runs; each spool is removed after its
run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobspool.cli import runner_argv  # noqa: E402
from jobspool.initspool import init_spool  # noqa: E402
from jobspool.model import Job  # noqa: E402
from jobspool.spool import Spool  # noqa: E402

JOBS = {
    "NoOp": {"class": "bench.benchjobs.NoOp", "allowed_methods": ["run"]},
    "Mark": {"class": "bench.benchjobs.Mark", "allowed_methods": ["touch"]},
}
CHUNK = 5000


def make_backlog(jobs: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="jobspool-backlog-"))
    settings = {"spool": "spool", "workers": 2, "allowed_jobs": JOBS}
    (root / "allowed_jobs.yaml").write_text(yaml.safe_dump(settings))
    init_spool(root / "spool")
    # Filling is not what is measured: no fsync (the runner reads them from the cache anyway).
    spool = Spool(root / "spool", durable=False)
    for start in range(0, jobs, CHUNK):
        count = min(CHUNK, jobs - start)
        spool.submit_many([Job(job="NoOp", method="run")] * count)
    return root


def submit_mark(root: Path, label: str) -> Path:
    marker = root / label
    spool = Spool(root / "spool", durable=False)
    spool.submit_many([Job(job="Mark", method="touch", params=[str(marker)], priority=1)])
    return marker


def _rss_mb(proc: psutil.Process) -> tuple[float, float]:
    """The runner's own RSS and its fork server's (its one long-lived child)."""
    own = proc.memory_info().rss / 2**20
    children = [c.memory_info().rss for c in proc.children() if c.is_running()]
    return own, max(children, default=0) / 2**20


def one_start(root: Path, label: str) -> tuple[float, float, float, float]:
    marker = submit_mark(root, label)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    cmd = runner_argv(root / "allowed_jobs.yaml", "--quiet", "--workers", "1")
    done = root / "spool" / "completed"
    finished = len(os.listdir(done))
    launched = time.time()
    proc = subprocess.Popen(cmd, cwd=root, env=env)
    try:
        deadline = time.monotonic() + 120
        # The job creates the marker, then writes its time into it.
        while not (marker.exists() and marker.read_text()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the first job never ran")
            time.sleep(0.005)
        first = float(marker.read_text()) - launched
        # Memory once the whole backlog is known: wait until the first NoOp ran too.
        while len(os.listdir(done)) < finished + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        own, forkserver = _rss_mb(psutil.Process(proc.pid))
        peak = psutil.Process(proc.pid).memory_full_info().uss / 2**20
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return first, own, forkserver, peak


def one_run(jobs: int) -> list[tuple[float, float, float, float]]:
    """The first start on a fresh backlog, then a restart on what is left of it."""
    root = make_backlog(jobs)
    try:
        return [one_start(root, "first"), one_start(root, "restart")]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs = [one_run(args.jobs) for _ in range(args.repeat)]
    for i, what in enumerate(("first start", "restart")):
        found = [r[i] for r in runs]
        first = [f[0] for f in found]
        print(
            f"backlog {args.jobs} jobs, {what}: first job (priority 1, submitted last) began "
            f"{statistics.median(first):.2f} s after launch "
            f"(range {min(first):.2f}-{max(first):.2f})"
        )
        print(
            f"  runner RSS {statistics.median(f[1] for f in found):.0f} MB "
            f"(USS {statistics.median(f[3] for f in found):.0f} MB), "
            f"fork server RSS {statistics.median(f[2] for f in found):.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
