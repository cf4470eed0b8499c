"""Engine benchmark: submit rate, burst drain rate, pickup latency.

    python bench/bench_engine.py [--jobs 2000] [--latency 200] [--workers 2] [--repeat 3]
                                 [--isolation process|pool]

Each figure uses a fresh temporary spool with the default durability
(fsync of every file and directory). Prints one line per figure; the drain
is the median of --repeat drains, with their range. Nothing is deleted
while it runs (see docs/PERFORMANCE.md: ext4 without a journal after mass deletions).
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobspool.cli import runner_argv  # noqa: E402
from jobspool.config import load_config  # noqa: E402
from jobspool.initspool import init_spool  # noqa: E402
from jobspool.states import Status  # noqa: E402
from jobspool.submit import open_spool, run_background_job  # noqa: E402

JOBS = {
    "NoOp": {"class": "bench.benchjobs.NoOp", "allowed_methods": ["run"]},
    "Stamp": {"class": "bench.benchjobs.Stamp", "allowed_methods": ["now"]},
}


# How attempts run (allowed_jobs.yaml's isolation): set once by --isolation.
ISOLATION = {"isolation": "process"}


def make_project(workers: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="jobspool-bench-"))
    settings = {"spool": "spool", "workers": workers, "allowed_jobs": JOBS, **ISOLATION}
    (root / "allowed_jobs.yaml").write_text(yaml.safe_dump(settings))
    init_spool(root / "spool")  # as `jobspool init` does: runners refuse a spool without it
    return root


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    return e


def bench_submit(n: int) -> float:
    root = make_project(2)
    cfg = load_config(root / "allowed_jobs.yaml")
    t0 = time.perf_counter()
    for _ in range(n):
        run_background_job("NoOp", "run", [], config=cfg)
    return n / (time.perf_counter() - t0)


def bench_drain(n: int, workers: int) -> tuple[float, float]:
    root = make_project(workers)
    cfg = load_config(root / "allowed_jobs.yaml")
    for _ in range(n):
        run_background_job("NoOp", "run", [], config=cfg)
    cmd = runner_argv(
        str(root / "allowed_jobs.yaml"), "--burst", "--quiet", "--workers", str(workers)
    )
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env(), check=True)
    total = time.perf_counter() - t0
    spool = open_spool(cfg)
    done = spool.count("completed")
    if done != n:
        raise SystemExit(f"drain: only {done} of {n} completed")
    # Drain rate without interpreter start-up: first start to last finish.
    stamps = [v.record.attempts[-1] for v in spool.list_jobs(Status.COMPLETED, limit=n)]
    first = min(a.started_at for a in stamps if a.started_at)
    last = max(a.finished_at for a in stamps if a.finished_at)
    return n / total, n / (last - first).total_seconds()


def bench_latency(n: int) -> tuple[float, float, float]:
    root = make_project(2)
    cfg = load_config(root / "allowed_jobs.yaml")
    spool = open_spool(cfg)
    cmd = runner_argv(str(root / "allowed_jobs.yaml"), "--quiet")
    proc = subprocess.Popen(cmd, env=env())
    try:
        wait(lambda: list((spool.root / "runners").glob("*.json")), 30)
        # One job first: the runner registers before its fork server is up,
        # and the figure is for a runner that is up and idle.
        first = run_background_job("Stamp", "now", [], config=cfg)
        wait((spool.dir("completed") / f"{first}.json").exists, 30)
        samples = []
        for _ in range(n):
            job_id = run_background_job("Stamp", "now", [], config=cfg)
            published = time.time()
            path = spool.dir("completed") / f"{job_id}.json"
            wait(path.exists, 10)
            view = spool.get(job_id)
            samples.append((float(view.record.result) - published) * 1000)
        samples.sort()
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        return statistics.median(samples), p99, samples[-1]
    finally:
        proc.terminate()
        proc.wait(30)


def wait(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out")
        time.sleep(0.0005)


def write_bytecode_caches() -> None:
    """As dev.py does: with PYTHONDONTWRITEBYTECODE set and no caches, every
    runner and fork server would compile the engine at start, and the
    compiler's leftovers would make each fork of the fork server dearer."""
    import jobspool

    # Where the engine is imported from (a development install links it
    # from build/, whose caches are not the sources' own).
    compileall.compile_dir(os.path.dirname(jobspool.__file__), quiet=2)
    compileall.compile_dir(ROOT / "bench", quiet=2)


def main() -> None:
    write_bytecode_caches()
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--latency", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="drains to take the median of")
    p.add_argument(
        "--isolation",
        choices=["process", "pool"],
        default="process",
        help="one process per attempt, or pool workers (allowed_jobs.yaml's isolation)",
    )
    a = p.parse_args()
    ISOLATION["isolation"] = a.isolation
    print(f"isolation: {a.isolation}")
    print(f"submit (helper, durable): {bench_submit(a.jobs):.0f} jobs/s")
    runs = [bench_drain(a.jobs, a.workers) for _ in range(max(1, a.repeat))]
    totals = sorted(total for total, _ in runs)
    steady = statistics.median(s for _, s in runs)
    spread = f" (median of {len(runs)}: {totals[0]:.0f}-{totals[-1]:.0f})" if len(runs) > 1 else ""
    print(
        f"drain {a.jobs} no-op jobs, --burst --workers {a.workers}, {a.isolation}, durable: "
        f"{statistics.median(totals):.0f} jobs/s end to end{spread}, "
        f"{steady:.0f} jobs/s first start to last finish"
    )
    p50, p99, worst = bench_latency(a.latency)
    print(
        f"pickup latency (published -> job code running), idle runner: "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms"
    )


if __name__ == "__main__":
    main()
