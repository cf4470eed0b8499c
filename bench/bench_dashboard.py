#!/usr/bin/env python3
"""Dashboard benchmark: page latency and memory with 100,000+ jobs on disk.

    python bench/bench_dashboard.py [--dir DIR] [--completed N] [--failed N]
                                    [--pending N] [--requests N] [--keep]

Builds a spool (by default 100,000 completed, 10,000 failed, 1,000 pending),
starts the real dashboard (``python -m jobspool.dashboard dashboard``: waitress, the
background index) in its own process, waits until its index has read every
file, then times the overview, list pages and job pages over keep-alive HTTP
and reads the dashboard process's memory. Prints p50/p95 per page and RSS.

Job files are written directly with the engine's encoder (``Spool.encode``
of a template record whose id and times are substituted per file), which is
what makes 111,000 files take seconds instead of minutes; they are valid
job files that the dashboard reads through ``Spool.view`` like any other.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobspool.initspool import init_spool  # noqa: E402
from jobspool.model import Attempt, ErrorInfo, HistoryEntry, Job, Outcome  # noqa: E402
from jobspool.names import new_id  # noqa: E402
from jobspool.spool import Spool  # noqa: E402
from jobspool.states import Status  # noqa: E402

PLACE_ID = "bench-placeholder-id"
PLACE_CREATED = datetime(2001, 1, 1, 0, 0, 1, tzinfo=UTC)
PLACE_STARTED = datetime(2001, 1, 1, 0, 0, 2, tzinfo=UTC)
PLACE_FINISHED = datetime(2001, 1, 1, 0, 0, 3, tzinfo=UTC)
PLACE_DURATION = 12345.678901
CONFIG = """\
spool: spool
durable: false
allowed_jobs:
  SampleJob: {allowed_methods: [process]}
  ExportJob: {allowed_methods: [export]}
  ReportJob: {class: jobs.SampleJob, allowed_methods: [process]}
"""
KINDS = (
    ("SampleJob", "process", ["order-{n}", "customer-{m}"]),
    ("ExportJob", "export", {"path": "exports/day-{n}.csv", "rows": 500}),
    ("ReportJob", "process", {"report": "weekly", "region": "eu-{m}"}),
)
ERRORS = (
    ("ValueError", "invalid order order-{n}: quantity must be positive"),
    ("TimeoutError", "upstream API did not answer within 30 s"),
    ("KeyError", "'customer-{m}'"),
)


def _iso(when: datetime) -> bytes:
    return when.isoformat().replace("+00:00", "Z").encode()


def _template(spool: Spool, status: Status, kind: int, n: int) -> bytes:
    job, method, raw = KINDS[kind]
    text = json.dumps(raw).replace("{n}", str(n % 997)).replace("{m}", str(n % 89))
    params = json.loads(text)
    ok = status is Status.COMPLETED
    error = None
    if status is Status.FAILED:
        etype, message = ERRORS[n % len(ERRORS)]
        tb = f'Traceback (most recent call last):\n  File "jobs/{job.lower()}.py", line 42\n{etype}'
        error = ErrorInfo(type=etype, message=message.replace("{n}", str(n % 997)), traceback=tb)
    attempts = []
    if status is not Status.PENDING:
        attempts.append(
            Attempt(
                number=1,
                runner="bench-runner-1",
                host="benchhost",
                pid=4000 + n % 1000,
                started_at=PLACE_STARTED,
                finished_at=PLACE_FINISHED,
                duration_seconds=PLACE_DURATION,
                outcome=Outcome.SUCCEEDED if ok else Outcome.FAILED,
                exit_code=0 if ok else 1,
                error=error,
            )
        )
    record = Job(
        job=job,
        method=method,
        params=params,
        id=PLACE_ID,
        max_attempts=1 if status is Status.FAILED else None,
        created_at=PLACE_CREATED,
        submitted_by="bench@benchhost",
        revision=3 if attempts else 1,
        attempts=attempts,
        result={"rows": 500, "ok": True} if ok else None,
        error=error,
        reason="attempts exhausted" if status is Status.FAILED else None,
        history=[HistoryEntry(at=PLACE_CREATED, action="submitted", via="cli")],
    )
    return spool.encode(record)


def write_jobs(
    spool: Spool, status: Status, count: int, *, now: float, spread: float, seed: int = 1
) -> list[str]:
    """Write ``count`` valid job files into one status directory; returns their ids.

    Submission times are spread over the last ``spread`` seconds; durations
    follow a long-tailed distribution per job kind.
    """
    rng = random.Random(seed)
    templates = {(k, n): _template(spool, status, k, n) for k in range(3) for n in range(60)}
    target = spool.dir(status)
    ids = []
    for i in range(count):
        created = now - spread * (i + rng.random()) / max(count, 1)
        duration = rng.lognormvariate(-1.0 + 0.8 * (i % 3), 0.7)
        job_id = new_id(created)
        data = templates[(i % 3, i % 60)]
        data = data.replace(PLACE_ID.encode(), job_id.encode())
        data = data.replace(_iso(PLACE_CREATED), _iso(datetime.fromtimestamp(created, UTC)))
        started = created + 0.05
        data = data.replace(_iso(PLACE_STARTED), _iso(datetime.fromtimestamp(started, UTC)))
        finished = datetime.fromtimestamp(started + duration, UTC)
        data = data.replace(_iso(PLACE_FINISHED), _iso(finished))
        data = data.replace(repr(PLACE_DURATION).encode(), f"{duration:.6f}".encode())
        with open(target / f"{job_id}.json", "wb") as fh:
            fh.write(data)
        ids.append(job_id)
    return ids


def build(root: Path, completed: int, failed: int, pending: int) -> dict[str, list[str]]:
    (root / "allowed_jobs.yaml").write_text(CONFIG)
    init_spool(root / "spool")  # as `jobspool init` does: the dashboard refuses a spool without it
    spool = Spool(root / "spool", durable=False)
    now = time.time()
    started = time.perf_counter()
    ids = {
        "completed": write_jobs(spool, Status.COMPLETED, completed, now=now, spread=2 * 86400),
        "failed": write_jobs(spool, Status.FAILED, failed, now=now, spread=2 * 86400, seed=2),
        "pending": write_jobs(spool, Status.PENDING, pending, now=now, spread=600, seed=3),
    }
    total = completed + failed + pending
    print(f"wrote {total} job files in {time.perf_counter() - started:.1f} s")
    return ids


# ------------------------------------------------------------------ measuring


class Http:
    def __init__(self, host: str, port: int) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        self.conn.request("GET", path, headers={"Host": f"127.0.0.1:{self.conn.port}"})
        res = self.conn.getresponse()
        body = res.read()
        return res.status, body, (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def timed(client: Http, name: str, paths: Callable[[int], str], n: int) -> dict[str, Any]:
    for i in range(5):
        client.get(paths(i))
    times = []
    for i in range(n):
        status, _body, ms = client.get(paths(i))
        if status != 200:
            raise SystemExit(f"{name}: {paths(i)} answered {status}")
        times.append(ms)
    return {"page": name, "p50": percentile(times, 0.5), "p95": percentile(times, 0.95)}


def peak_rss(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(found.group(1)) / 1024 if found else None


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dir", help="where to build the spool (default: a temporary directory)")
    ap.add_argument("--completed", type=int, default=100_000)
    ap.add_argument("--failed", type=int, default=10_000)
    ap.add_argument("--pending", type=int, default=1_000)
    ap.add_argument("--requests", type=int, default=200, help="timed requests per page")
    ap.add_argument("--keep", action="store_true", help="keep the spool directory afterwards")
    ap.add_argument(
        "--reuse", action="store_true", help="use the spool already in --dir instead of building"
    )
    return ap.parse_args()


@contextlib.contextmanager
def dashboard_process(root: Path) -> Iterator[tuple[subprocess.Popen[str], Http]]:
    """The real dashboard command in its own process, and a keep-alive client to it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSPOOL_")}
    env["PYTHONPATH"] = str(ROOT)
    config = str(root / "allowed_jobs.yaml")
    cmd = [
        sys.executable,
        "-m",
        "jobspool.dashboard",
        "dashboard",
        "--config",
        config,
        "--port",
        "0",
    ]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://([\d.]+):(\d+)/", line)
        if not found:
            raise SystemExit(f"dashboard did not start: {line!r}")
        client = Http(found.group(1), int(found.group(2)))
        try:
            yield proc, client
        finally:
            client.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()


def wait_ready(client: Http) -> float:
    started = time.perf_counter()
    while True:
        status, body, _ms = client.get("/api/overview")
        if status == 200 and json.loads(body)["index"]["ready"]:
            return time.perf_counter() - started
        if time.perf_counter() - started > 900:
            raise SystemExit("the index did not finish reading within 900 s")
        time.sleep(0.5)


def measure(client: Http, ids: dict[str, list[str]], n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    done_ids = ids["completed"]
    pages = max(1, len(done_ids) // 50)
    return [
        timed(client, "overview  GET /", lambda i: "/", n),
        timed(
            client,
            "list      GET /jobs?status=completed&page=N",
            lambda i: f"/jobs?status=completed&page={rng.randint(1, pages)}",
            n,
        ),
        timed(client, "job       GET /jobs/<id>", lambda i: f"/jobs/{rng.choice(done_ids)}", n),
        timed(client, "list all  GET /jobs", lambda i: "/jobs", n),
        timed(
            client,
            "search    GET /jobs?q=customer-4N (10 queries)",
            lambda i: f"/jobs?q=customer-{40 + i % 10}",
            n,
        ),
        timed(
            client,
            "filter    GET /jobs?status=failed&job=ExportJob",
            lambda i: f"/jobs?status=failed&job=ExportJob&page={1 + i % 5}",
            n,
        ),
        timed(client, "api       GET /api/overview", lambda i: "/api/overview", n),
        timed(client, "metrics   GET /metrics", lambda i: "/metrics", n),
    ]


def main() -> int:
    args = parse_args()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="jobspool-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.reuse:
        spool = Spool(root / "spool", create=False)
        ids = {s: [n[:-5] for n in spool.names(s)] for s in ("completed", "failed", "pending")}
    else:
        ids = build(root, args.completed, args.failed, args.pending)
    try:
        with dashboard_process(root) as (proc, client):
            ready_s = wait_ready(client)
            rss_ready = psutil.Process(proc.pid).memory_info().rss / 2**20
            results = measure(client, ids, args.requests)
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
            peak = peak_rss(proc.pid)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    counts = {s: len(v) for s, v in ids.items()}
    print(
        f"jobs on disk: {counts['completed']} completed, {counts['failed']} failed, "
        f"{counts['pending']} pending; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores"
    )
    print(f"index ready after {ready_s:.1f} s (reads every file once, in the background)")
    print(f"{'page':<50} {'p50 ms':>8} {'p95 ms':>8}")
    for r in results:
        print(f"{r['page']:<50} {r['p50']:>8.1f} {r['p95']:>8.1f}")
    peak_text = f", peak {peak:.0f} MB" if peak is not None else ""
    print(f"dashboard RSS: {rss:.0f} MB after the run, {rss_ready:.0f} MB when ready{peak_text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
