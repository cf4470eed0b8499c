#!/usr/bin/env python3
"""Take docs/overview.png and docs/job.png from a realistic, live spool.

    python bench/make_screenshots.py [--out docs]

Builds a throwaway project: a day of finished jobs (written like the
benchmark does), a real runner working through an order import that reports
progress and writes a log, a few jobs that fail with real tracebacks. It
retries one failed import through the dashboard's own Retry button and takes
both pictures in headless Chromium while that attempt runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.bench_dashboard import write_jobs  # noqa: E402
from bench.browser import launch  # noqa: E402
from jobspool.config import Config, load_config  # noqa: E402
from jobspool.dashboard.app import create_app  # noqa: E402
from jobspool.dashboard.server import DashboardServer  # noqa: E402
from jobspool.dashboard.state import Dashboard  # noqa: E402
from jobspool.initspool import init_spool  # noqa: E402
from jobspool.model import Job  # noqa: E402
from jobspool.states import Status  # noqa: E402
from jobspool.submit import open_spool  # noqa: E402

CONFIG = """\
spool: spool
durable: false
workers: 3
heartbeat_seconds: 0.5
poll_seconds: 0.5
retry: {max_attempts: 3, delay_seconds: 2, jitter: 0}
allowed_jobs:
  SampleJob: {allowed_methods: [process]}
  ExportJob: {allowed_methods: [export]}
  ReportJob: {class: jobs.SampleJob, allowed_methods: [process]}
  ImportOrders:
    class: demo_jobs.ImportOrders
    allowed_methods: [run]
    description: Import an order file from the shop into the warehouse system
"""
DEMO_JOBS = '''\
"""Demo job for the screenshots: imports orders, reports progress, can fail."""

import time
from pathlib import Path

from jobspool import current_job, report_progress


class ImportOrders:
    def run(self, source: str, batches: int = 40, pause: float = 0.5) -> dict[str, int]:
        ctx = current_job()
        print(f"importing {source} (attempt {ctx.attempt if ctx else 0})", flush=True)
        seen = Path(source + ".tried")
        if source.endswith("broken.csv") and not seen.exists():
            seen.write_text("x")
            print("row 1812: currency 'XBT' is not in the price list", flush=True)
            raise ValueError("row 1812 of " + source + ": unknown currency 'XBT'")
        for i in range(batches):
            print(f"batch {i + 1}/{batches}: 250 orders imported, 0 skipped", flush=True)
            report_progress((i + 1) / batches, f"batch {i + 1} of {batches}")
            time.sleep(pause)
        return {"orders": batches * 250}
'''


def wait(cond: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def build_project(project: Path) -> tuple[Config, str]:
    """A day of finished jobs plus imports for the runner; returns the one that fails."""
    (project / "allowed_jobs.yaml").write_text(CONFIG)
    (project / "demo_jobs.py").write_text(DEMO_JOBS)
    cfg = load_config(project / "allowed_jobs.yaml")
    init_spool(cfg.spool_dir)  # as `jobspool init` does: nothing opens a spool without it
    spool = open_spool(cfg)
    now = time.time()
    write_jobs(spool, Status.COMPLETED, 5200, now=now - 120, spread=86400, seed=11)
    write_jobs(spool, Status.FAILED, 160, now=now - 120, spread=86400, seed=12)

    def submit(params: list[object], max_attempts: int | None = None) -> str:
        job = Job(job="ImportOrders", method="run", params=params, max_attempts=max_attempts)
        return spool.submit(job, by="ops@shop", via="cli")

    broken = submit([str(project / "orders-2026-11-29-broken.csv"), 40, 0.6], max_attempts=1)
    for day in range(24, 29):
        submit([str(project / f"orders-2026-11-{day}.csv"), 30, 0.4])
    return cfg, broken


def photograph(url: str, broken: str, out: Path) -> None:
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(url + f"jobs/{broken}")
        page.click("#retry")
        page.wait_for_selector("#job-status:text('running')", timeout=60_000)
        page.wait_for_selector("#progress progress", timeout=60_000)
        time.sleep(6)  # let the progress bar and the log fill a little
        page.screenshot(path=str(out / "job.png"), full_page=True)
        page.goto(url)
        page.wait_for_selector(".runners", timeout=30_000)
        time.sleep(1.5)
        page.screenshot(path=str(out / "overview.png"), full_page=True)
        browser.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "docs"), help="directory for the PNG files")
    ap.add_argument("--keep", action="store_true", help="keep the throwaway project directory")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    project = Path(tempfile.mkdtemp(prefix="jobspool-shots-"))
    cfg, broken = build_project(project)
    spool = open_spool(cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSPOOL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(project)])
    config = str(project / "allowed_jobs.yaml")
    runner = subprocess.Popen(
        [sys.executable, "-m", "jobspool.cli", "runner", "--config", config, "--quiet"],
        cwd=project,
        env=env,
    )
    dash = Dashboard(cfg, refresh_seconds=0.3)
    dash.start()
    server = DashboardServer(create_app(dash), "127.0.0.1", 0, threads=4)
    server.start_thread()
    try:
        wait(lambda: spool.find(broken) and spool.get(broken).status == "failed", 60, "a failure")
        wait(lambda: dash.index.state().ready, 120, "the index")
        photograph(server.url, broken, out)
    finally:
        server.stop()
        dash.stop()
        runner.terminate()
        try:
            runner.wait(30)
        except subprocess.TimeoutExpired:
            runner.kill()
        if not args.keep:
            shutil.rmtree(project, ignore_errors=True)
    print(f"wrote {out / 'overview.png'} and {out / 'job.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
