#!/usr/bin/env python3
"""jobspool adapter for the peer harness, through jobspool's public contract only.

Run it with the python of a venv where the project is installed (pip install <project>):
  <venv>/bin/python bench_jobspool.py --n 2000 --workers 2 --repeats 3 --out ../results
  <venv>/bin/python bench_jobspool.py --mode batch ...      submits with run_background_jobs
  <venv>/bin/python bench_jobspool.py --mode pool ...       isolation: pool for the whole spool
  <venv>/bin/python bench_jobspool.py --job realistic ...   a job module as real ones are

Each repeat makes a workspace: allowed_jobs.yaml (spool: spool) plus a package `benchjobs`
whose class Rec.record(mark, seq) calls jobrec.record. Jobs are submitted in-process with
run_background_job (batch mode: buffered and published with run_background_jobs, BATCH at a
time, and whatever is buffered when the harness flushes); workers are `jobspool runner
--workers N` from the same venv. The realistic job module imports json, datetime, pathlib and
pydantic and takes its params through a pydantic model, as application jobs do.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import benchlib

CONFIG = """\
spool: spool
workers: {workers}
{isolation}retry:
  max_attempts: 1
allowed_jobs:
  Rec:
    class: benchjobs.Rec
    allowed_methods: [record]
"""

JOB = """\
import sys
sys.path.insert(0, {peers!r})
import jobrec


class Rec:
    def record(self, mark, seq):
        jobrec.record(mark, int(seq))
"""

REALISTIC_JOB = """\
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, {peers!r})
import jobrec


class Mark(BaseModel):
    path: Path
    seq: int
    at: datetime | None = None


class Rec:
    def record(self, mark: str, seq: str) -> str:
        m = Mark(path=mark, seq=seq, at=datetime.now(timezone.utc))
        jobrec.record(str(m.path), m.seq)
        return json.dumps({{"seq": m.seq}})
"""
BATCH = 1000


class JobspoolAdapter:
    name = "jobspool"

    def __init__(self, args):
        self.args = args
        self.mode = args.mode
        self.proc = None
        submit = "run_background_jobs, %d at a time (in-process)" % BATCH if self.mode == "batch" \
            else "run_background_job (in-process)"
        self.settings = {"runner": "jobspool runner --workers N", "submit": submit,
                         "durability": "project default", "job": args.job,
                         "isolation": "pool" if self.mode == "pool" else "process"}
        self.buffer = []
        self.versions = benchlib.versions("watchdog", "pydantic")
        self.bindir = os.path.dirname(sys.executable)

    def setup(self, rundir):
        self.rundir = rundir
        os.makedirs(os.path.join(rundir, "benchjobs"))
        with open(os.path.join(rundir, "benchjobs", "__init__.py"), "w") as f:
            body = REALISTIC_JOB if self.args.job == "realistic" else JOB
            f.write(body.format(peers=benchlib.PEERS_DIR))
        self.config = os.path.join(rundir, "allowed_jobs.yaml")
        with open(self.config, "w") as f:
            isolation = "isolation: pool\n" if self.mode == "pool" else ""
            f.write(CONFIG.format(workers=self.args.workers, isolation=isolation))
        os.environ["JOBSPOOL_CONFIG"] = self.config
        os.environ.pop("JOBSPOOL_SPOOL", None)
        # a runner started on the explicit config lays out the spool before anything is submitted
        subprocess.run([os.path.join(self.bindir, "jobspool"), "runner", "--burst", "--config", self.config],
                       cwd=rundir, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        from jobspool import run_background_job, run_background_jobs  # once the config is set
        self.submit_fn = run_background_job
        self.batch_fn = run_background_jobs

    def start_workers(self):
        cmd = [os.path.join(self.bindir, "jobspool"), "runner", "--config", self.config,
               "--workers", str(self.args.workers)]
        self.proc = benchlib.Proc(cmd, os.path.join(self.rundir, "runner.log"))

    def stop_workers(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def queued(self):
        d = os.path.join(self.rundir, "spool", "pending")
        return len(os.listdir(d)) if os.path.isdir(d) else 0

    def purge(self):
        d = os.path.join(self.rundir, "spool", "pending")
        if os.path.isdir(d):
            for name in os.listdir(d):
                os.unlink(os.path.join(d, name))

    def submit(self, mark, seq):
        if self.mode != "batch":
            self.submit_fn("Rec", "record", [mark, str(seq)])
            return
        self.buffer.append({"job": "Rec", "method": "record", "params": [mark, str(seq)]})
        if len(self.buffer) >= BATCH:
            self.flush()

    def flush(self):
        if self.buffer:
            self.batch_fn(self.buffer)
            self.buffer = []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="process-per-attempt",
                    choices=["process-per-attempt", "batch", "pool"])
    ap.add_argument("--job", default="noop", choices=["noop", "realistic"])
    benchlib.add_common_args(ap)
    args = ap.parse_args()
    benchlib.main(JobspoolAdapter(args), args)


if __name__ == "__main__":
    sys.exit(main())
