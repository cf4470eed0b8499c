"""Retention benchmark: purging many finished jobs while a runner drains new ones.

    python bench/bench_purge.py [--finished 100000] [--jobs 3000] [--workers 2]

A fresh temporary spool gets ``--finished`` completed jobs finished 40 days
ago, each with its log. Then, twice, ``--jobs`` NoOp jobs are queued and a
runner (in this process, on a thread, with the default durability) drains
them: first with ``completed: keep`` (nothing purged: the baseline), then
with ``completed: 7d``, so the same runner purges every old job while it
drains. Reported: the purge rate (jobs/s, from the first retention step to
the end of the pass), the drain rate of the new jobs with and without the
purge, and the loop's step latency (worst and 99th percentile) in both runs.
"""

from __future__ import annotations

import argparse
import compileall
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The allow-list check and the attempts import bench.benchjobs from here.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
)

from jobspool.config import load_config  # noqa: E402
from jobspool.daemon import Runner  # noqa: E402
from jobspool.initspool import init_spool  # noqa: E402
from jobspool.messages import StopRequested  # noqa: E402
from jobspool.model import Attempt, Job, Outcome, utcnow  # noqa: E402
from jobspool.names import new_id  # noqa: E402
from jobspool.spool import Spool  # noqa: E402
from jobspool.states import Status  # noqa: E402

JOBS = {"NoOp": {"class": "bench.benchjobs.NoOp", "allowed_methods": ["run"]}}
DAY = 86400.0


class TimedRunner(Runner):
    """A runner that records how long each step of its loop takes."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.steps: list[float] = []
        self.purge_began: float | None = None
        self.purge_ended: float | None = None

    def step(self, now: float, wall: float | None = None) -> float | None:
        t0 = time.perf_counter()
        busy = self.retention.active
        wait = super().step(now, wall)
        self.steps.append(time.perf_counter() - t0)
        if self.retention.active and self.purge_began is None:
            self.purge_began = t0
        if busy and not self.retention.active and self.purge_ended is None:
            self.purge_ended = time.perf_counter()
        return wait


def make_project(workers: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="jobspool-bench-purge-"))
    write_config(root, workers, "keep")
    init_spool(root / "spool")
    return root


def write_config(root: Path, workers: int, completed: str) -> None:
    settings = {
        "spool": "spool",
        "workers": workers,
        "retention": {"completed": completed, "check_seconds": 600},
        "allowed_jobs": JOBS,
    }
    (root / "allowed_jobs.yaml").write_text(yaml.safe_dump(settings))


def fill(spool: Spool, n: int) -> None:
    """n completed records (as a runner writes them) finished 40 days ago, with logs."""
    old = time.time() - 40 * DAY
    base = Job(job="NoOp", method="run", params=[], revision=3, created_at=utcnow())
    attempt = Attempt(number=1, runner="r", host="h", outcome=Outcome.SUCCEEDED)
    base = base.model_copy(update={"attempts": [attempt]})
    folder = spool.dir(Status.COMPLETED)
    for i in range(n):
        job_id = new_id(old + i * 1e-3)
        path = folder / f"{job_id}.json"
        path.write_bytes(spool.encode(base.model_copy(update={"id": job_id})))
        os.utime(path, (old, old))
        Path(spool.job_log_file(job_id)).write_bytes(b"output\n")


def queue(spool: Spool, n: int) -> None:
    for _ in range(n):
        spool.submit(Job(job="NoOp", method="run", params=[]), by="bench")


def drain(root: Path, n: int) -> dict[str, float]:
    """Run a runner until the queued jobs are done (and a purge pass, if any, ended)."""
    cfg = load_config(root / "allowed_jobs.yaml")
    runner = TimedRunner(cfg)
    spool = Spool(root / "spool", durable=False)
    thread = threading.Thread(target=runner.run, name="bench-runner", daemon=True)
    t0 = time.perf_counter()
    thread.start()
    drained = None
    purging = cfg.settings.retention.completed is not None
    while True:
        time.sleep(0.05)
        if drained is None and not spool.names(Status.PENDING) and not spool.names(Status.RUNNING):
            drained = time.perf_counter()
        if drained is not None and (not purging or runner.purge_ended is not None):
            break
    runner.events.put(StopRequested(signal.SIGTERM), wake=True)
    thread.join(60)
    steps = sorted(runner.steps)
    out = {
        "drain_rate": n / (drained - t0),
        "step_max_ms": steps[-1] * 1000,
        "step_p99_ms": steps[int(len(steps) * 0.99)] * 1000,
        "step_median_ms": statistics.median(steps) * 1000,
        "steps": len(steps),
    }
    if purging:
        assert runner.purge_began is not None and runner.purge_ended is not None
        out["purge_seconds"] = runner.purge_ended - runner.purge_began
        out["drain_done_before_purge_ended"] = float(drained < runner.purge_ended)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    compileall.compile_dir(str(ROOT / "runner"), quiet=1)
    root = make_project(args.workers)
    spool = Spool(root / "spool", durable=False)
    t0 = time.perf_counter()
    fill(spool, args.finished)
    print(f"setup: {args.finished} completed jobs with logs in {time.perf_counter() - t0:.1f}s")
    queue(spool, args.jobs)
    base = drain(root, args.jobs)
    print(
        f"without purge: drain {base['drain_rate']:.0f} jobs/s; loop step max "
        f"{base['step_max_ms']:.1f} ms, p99 {base['step_p99_ms']:.2f} ms, "
        f"median {base['step_median_ms']:.3f} ms ({base['steps']:.0f} steps)"
    )
    write_config(root, args.workers, "7d")
    queue(spool, args.jobs)
    run = drain(root, args.jobs)
    left = spool.count(Status.COMPLETED)
    expected = 2 * args.jobs
    print(
        f"with purge:    drain {run['drain_rate']:.0f} jobs/s; loop step max "
        f"{run['step_max_ms']:.1f} ms, p99 {run['step_p99_ms']:.2f} ms, "
        f"median {run['step_median_ms']:.3f} ms ({run['steps']:.0f} steps)"
    )
    print(
        f"purge: {args.finished} jobs in {run['purge_seconds']:.1f}s = "
        f"{args.finished / run['purge_seconds']:.0f} jobs/s "
        f"(drain finished {'during' if run['drain_done_before_purge_ended'] else 'after'} "
        f"the purge); completed left {left} (expected {expected}), "
        f"job logs left {len(os.listdir(spool.log_dir / 'jobs'))} (expected {expected})"
    )


if __name__ == "__main__":
    main()
