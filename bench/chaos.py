"""Chaos harness: real runners killed, paused and stopped at random on one spool.

    python bench/chaos.py [--seconds 60] [--seed N] [--runners 3] [--lease 2]
    python bench/chaos.py --spool /mnt/a/spool --spool /mnt/b/spool --hosts host-a,host-b
        --runners 2 --no-watch

Several runner processes (some playing another host through JOBSPOOL_HOST)
share one temporary spool, or the spool given with ``--spool``: given more
than once (mounts of one shared spool), runner i reaches it through the
i-th path, round-robin, and the harness submits and reads through the first.
Ledger jobs are submitted throughout (some slow, some starting a grandchild
process), and meanwhile, at random, the harness SIGKILLs runners and
restarts them, SIGKILLs job processes (children of a runner's fork server
that its heartbeat lists as attempts), SIGSTOPs runners past their lease and
SIGCONTs them, and SIGTERMs runners and restarts them.

Chaos lasts ``--seconds``; then every runner is brought back, the spool
drains (bounded by ``--drain-seconds``), the runners are stopped, and the
figures are printed. The exit status is non-zero when any job was lost,
any job has two terminal copies, any process of the run outlived it, the
spool did not drain, or a job completed without ever running.

Every random choice comes from ``--seed`` (printed first), so a run's
sequence of decisions can be replayed; the timing of real processes cannot.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chaosjobs import GRANDCHILD_NOTE  # noqa: E402
from jobspool.cli import runner_argv  # noqa: E402
from jobspool.config import Config, load_config  # noqa: E402
from jobspool.initspool import init_spool  # noqa: E402
from jobspool.names import RunningName  # noqa: E402
from jobspool.submit import run_background_job  # noqa: E402

TAG_VAR = "JOBSPOOL_CHAOS_TAG"
PROGRESS_SECONDS = 60.0
ACTS = ("kill", "pause", "job", "term")
# A runner counts as a steady rescuer once it has been up this long (start-up done).
WARM_SECONDS = 2.0
TERMINAL = ("completed", "failed", "cancelled")
STATUSES = ("pending", "running", *TERMINAL)
JOBS: dict[str, Any] = {
    "Ledger": {"class": "bench.crashjobs.Ledger", "allowed_methods": ["record"]},
    "SlowLedger": {"class": "bench.chaosjobs.SlowLedger", "allowed_methods": ["record"]},
}
LOG_EVENTS = (
    "recovered",
    "lease_lost",
    "runner_reregistered",
    "fenced",
    "handed_back",
    "duplicate_resolved",
    "finish_error",
    "launcher_died",
)


@dataclass
class Slot:
    """One runner seat: restarted in place after each kill or stop."""

    index: int
    host: str
    state: str = "down"  # up | paused | terminating | down
    proc: subprocess.Popen[bytes] | None = None
    stderr: IO[bytes] | None = None
    restart_at: float = 0.0
    resume_at: float = 0.0
    starts: int = 0
    unexpected_exits: list[int] = field(default_factory=list)
    # (from, until) spans in which this runner was up and neither paused nor stopping.
    spans: list[list[float]] = field(default_factory=list)

    def set_state(self, state: str, now: float) -> None:
        if state == "up" and self.state != "up":
            self.spans.append([now, math.inf])
        elif state != "up" and self.state == "up" and self.spans:
            self.spans[-1][1] = now
        self.state = state

    def up_during(self, start: float, end: float) -> bool:
        return any(a <= start and end <= b for a, b in self.spans)


@dataclass
class Watch:
    """A runner's claims at the moment it was killed or paused, until they are recovered."""

    kind: str
    slot: int
    since: float
    ids: set[str]
    claims: set[tuple[str, int]]
    took_over: float | None = None  # no running file carries the runner's ids any more
    took: float | None = None  # no running file carries those (job, attempt) pairs


@dataclass
class Tally:
    runner_kills: int = 0
    job_kills: int = 0
    pauses: int = 0
    terms: int = 0
    submitted: list[str] = field(default_factory=list)


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # Separate streams, so the job mix does not shift the chaos decisions.
        self.rng = random.Random(args.seed)
        self.jobs_rng = random.Random(args.seed + 1)
        self.strikes = 0
        self.root = Path(tempfile.mkdtemp(prefix="jobspool-chaos-"))
        self.spools: list[Path] = args.spool or [self.root / "spool"]
        self.spool = self.spools[0]
        self.ledger = self.root / "ledger.txt"
        self.config_path = self.root / "allowed_jobs.yaml"
        self.tag = f"{args.seed}-{secrets.token_hex(6)}"
        settings = {
            "spool": str(self.spool),
            "workers": args.workers,
            "heartbeat_seconds": args.heartbeat,
            "lease_seconds": args.lease,
            "poll_seconds": 0.5,
            "grace_seconds": 1.0,
            "timeout_seconds": 60,
            "retry": {
                "max_attempts": args.max_attempts,
                "delay_seconds": 0.1,
                "jitter": 0.5,
                "max_delay_seconds": 1.0,
            },
            "allowed_jobs": JOBS,
            "isolation": args.isolation,
        }
        self.config_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        self.config: Config = load_config(self.config_path)
        # As a user does once (`jobspool init`): runners refuse a spool without
        # its marker. Through the first path, the one the harness submits to.
        init_spool(self.spool, log_dir=self.config.log_dir)
        hosts = args.hosts.split(",")
        self.slots = [Slot(i, hosts[i % len(hosts)]) for i in range(args.runners)]
        self.watches: list[Watch] = []
        self.tally = Tally()

    # ------------------------------------------------------------ processes

    def environ(self, host: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSPOOL_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env["JOBSPOOL_HOST"] = host
        # Inherited by fork servers, attempts and grandchildren: how the
        # orphan count finds this run's processes and nobody else's.
        env[TAG_VAR] = self.tag
        return env

    def start(self, slot: Slot) -> None:
        slot.starts += 1
        if slot.stderr is not None:
            slot.stderr.close()
        slot.stderr = open(self.root / f"runner-{slot.index}-{slot.starts}.stderr", "wb")  # noqa: SIM115
        spool = self.spools[slot.index % len(self.spools)]
        watch = ["--no-watch"] if self.args.no_watch else []
        cmd = runner_argv(str(self.config_path), "--quiet", "--spool", str(spool), *watch)
        slot.proc = subprocess.Popen(
            cmd,
            env=self.environ(slot.host),
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=slot.stderr,
        )
        slot.set_state("up", time.monotonic())

    def runner_ids(self, pid: int) -> set[str]:
        """Ids this runner process registered under (a fenced runner re-registers)."""
        ids = set()
        for path in (self.spool / "runners").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                if json.loads(path.read_text()).get("pid") == pid:
                    ids.add(path.name[: -len(".json")])
        return ids

    def heartbeat_pids(self) -> set[int]:
        pids = set()
        for path in (self.spool / "runners").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                for job in json.loads(path.read_text()).get("jobs", []):
                    if isinstance(job.get("pid"), int):
                        pids.add(job["pid"])
        return pids

    def running(self) -> list[RunningName]:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.spool / "running"):
                parsed = RunningName.parse(name)
                if parsed is not None:
                    out.append(parsed)
        return out

    def claims_of(self, ids: set[str]) -> set[tuple[str, int]]:
        return {(c.job_id, c.attempt) for c in self.running() if c.runner in ids}

    def attempt_pids(self, slot: Slot) -> list[int]:
        """Children of the runner's fork server that a heartbeat lists as attempts."""
        assert slot.proc is not None
        listed = self.heartbeat_pids()
        found = []
        with contextlib.suppress(psutil.Error):
            for helper in psutil.Process(slot.proc.pid).children():
                if "jobspool.zygote" in " ".join(helper.cmdline()):
                    found += [c.pid for c in helper.children() if c.pid in listed]
        return found

    # ------------------------------------------------------------ chaos

    def up(self) -> list[Slot]:
        return [s for s in self.slots if s.state == "up"]

    def kill_runner(self, slot: Slot, now: float) -> None:
        assert slot.proc is not None
        ids = self.runner_ids(slot.proc.pid)
        slot.proc.kill()
        slot.proc.wait()
        # Its files cannot change any more: what is in running/ now must be recovered.
        self.watch("kill", slot, ids, now)
        slot.set_state("down", now)
        slot.restart_at = now + self.rng.uniform(0.3, 3.0)
        self.tally.runner_kills += 1

    def kill_job(self, slot: Slot) -> bool:
        pids = self.attempt_pids(slot)
        if not pids:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.rng.choice(sorted(pids)), signal.SIGKILL)
            self.tally.job_kills += 1
        return True

    def pause(self, slot: Slot, now: float) -> None:
        assert slot.proc is not None
        ids = self.runner_ids(slot.proc.pid)
        slot.proc.send_signal(signal.SIGSTOP)
        self.watch("pause", slot, ids, now)
        slot.set_state("paused", now)
        slot.resume_at = now + self.args.lease + self.rng.uniform(0.5, 2.0)
        self.tally.pauses += 1

    def term(self, slot: Slot) -> None:
        assert slot.proc is not None
        slot.proc.send_signal(signal.SIGTERM)
        slot.set_state("terminating", time.monotonic())
        self.tally.terms += 1

    def strike(self, now: float) -> None:
        """One random act of chaos; runner-level acts always leave one runner up."""
        up = self.up()
        if not up:
            return
        slot = self.rng.choice(up)
        # Every kind of act comes once first, so even a short run inflicts each.
        if self.strikes < len(ACTS):
            act = ACTS[self.strikes]
        else:
            act = self.rng.choices(ACTS, [3, 2, 3, 2])[0]
        self.strikes += 1
        if act == "job" or len(up) < 2:
            self.kill_job(slot)
        elif act == "kill":
            self.kill_runner(slot, now)
        elif act == "pause":
            self.pause(slot, now)
        else:
            self.term(slot)

    def tend(self, now: float, *, restart: bool = True) -> None:
        """Reap exits, resume paused runners, restart stopped ones, time recoveries."""
        for slot in self.slots:
            if slot.proc is not None and slot.state in ("up", "terminating"):
                code = slot.proc.poll()
                if code is not None:
                    if slot.state == "up":
                        slot.unexpected_exits.append(code)
                    slot.set_state("down", now)
                    slot.restart_at = now + self.rng.uniform(0.3, 2.0)
            if slot.state == "paused" and now >= slot.resume_at:
                assert slot.proc is not None
                slot.proc.send_signal(signal.SIGCONT)
                slot.set_state("up", now)
            if restart and slot.state == "down" and now >= slot.restart_at:
                self.start(slot)
        open_watches = [w for w in self.watches if w.took is None]
        if open_watches:
            running = self.running()
            present = {(c.job_id, c.attempt) for c in running}
            owners = {c.runner for c in running}
            for watch in open_watches:
                if watch.took_over is None and not watch.ids & owners:
                    watch.took_over = now - watch.since
                if not watch.claims & present:
                    watch.took = now - watch.since

    def watch(self, kind: str, slot: Slot, ids: set[str], now: float) -> None:
        self.watches.append(Watch(kind, slot.index, now, ids, self.claims_of(ids)))

    def path(self, watch: Watch) -> str:
        """Who could recover the claims: "lock" when a runner of the same host was
        up (and past its start-up) from the kill until the takeover, "lease" when
        only another host's runner was, "churn" when the would-be rescuers were
        themselves killed, paused or restarting meanwhile."""
        if watch.took_over is None:
            return "never"
        start, end = watch.since - WARM_SECONDS, watch.since + watch.took_over
        victim = self.slots[watch.slot]
        steady = [s for s in self.slots if s is not victim and s.up_during(start, end)]
        if any(s.host == victim.host for s in steady) and watch.kind == "kill":
            return "lock"  # a frozen runner keeps its lock: pauses are never "lock"
        return "lease" if steady else "churn"

    def submit(self, count: int) -> None:
        for _ in range(count):
            if self.jobs_rng.random() < 0.65:
                params: list[Any] = [str(self.ledger)]
                job_id = run_background_job("Ledger", "record", params, config=self.config)
            else:
                seconds = round(self.jobs_rng.uniform(0.05, 1.5), 3)
                params = [str(self.ledger), seconds, self.jobs_rng.random() < 0.25]
                job_id = run_background_job("SlowLedger", "record", params, config=self.config)
            self.tally.submitted.append(job_id)

    # ------------------------------------------------------------ phases

    def chaos(self) -> None:
        start = time.monotonic()
        end = start + self.args.seconds
        next_strike = start + self.rng.uniform(1.0, 2.0)
        next_progress = start + PROGRESS_SECONDS
        for slot in self.slots:
            self.start(slot)
        self.submit(self.args.initial_jobs)
        while (now := time.monotonic()) < end:
            self.tend(now)
            due = self.args.initial_jobs + int(self.args.rate * (now - start))
            if due > len(self.tally.submitted):
                self.submit(due - len(self.tally.submitted))
            if now >= next_strike:
                self.strike(now)
                next_strike = now + self.rng.uniform(0.5, 2.5)
            if now >= next_progress:
                next_progress = now + PROGRESS_SECONDS
                self.progress(now - start)
            time.sleep(0.02)

    def progress(self, elapsed: float) -> None:
        found = self.census()
        t = self.tally
        print(
            f"  t={elapsed:.0f}s submitted {len(t.submitted)} "
            + " ".join(f"{s} {len(found[s])}" for s in STATUSES)
            + f"; runner kills {t.runner_kills} job kills {t.job_kills} pauses {t.pauses}"
            f" SIGTERMs {t.terms}",
            flush=True,
        )

    def drained(self) -> bool:
        found = self.census()
        if any(found[s] for s in ("pending", "running")):
            return False
        terminal = set().union(*(found[s] for s in TERMINAL))
        return set(self.tally.submitted) <= terminal

    def drain(self) -> float:
        """Resume and restart every runner; wait until every job is terminal."""
        start = time.monotonic()
        deadline = start + self.args.drain_seconds
        for slot in self.slots:
            slot.resume_at = 0.0
            slot.restart_at = 0.0
        while time.monotonic() < deadline:
            self.tend(time.monotonic())
            if self.drained():
                break
            time.sleep(0.1)
        return time.monotonic() - start

    def stop(self) -> list[str]:
        problems = []
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                if slot.state == "paused":
                    slot.proc.send_signal(signal.SIGCONT)
                slot.proc.send_signal(signal.SIGTERM)
        for slot in self.slots:
            if slot.proc is None:
                continue
            try:
                code = slot.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                slot.proc.kill()
                slot.proc.wait()
                problems.append(f"runner {slot.index} ignored SIGTERM for 60s")
                continue
            if slot.state == "up" and code != 0:
                slot.unexpected_exits.append(code)
            slot.set_state("down", time.monotonic())
            if slot.stderr is not None:
                slot.stderr.close()
                slot.stderr = None
        return problems

    def leftovers(self) -> list[psutil.Process]:
        """Processes of this run still alive: tagged, or naming the spool."""
        me = os.getpid()
        spools = [str(s) for s in self.spools]
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            with contextlib.suppress(psutil.Error):
                cmdline = " ".join(proc.info["cmdline"] or [])
                if any(s in cmdline for s in spools) or proc.environ().get(TAG_VAR) == self.tag:
                    found.append(proc)
        return found

    def orphans(self) -> list[str]:
        deadline = time.monotonic() + 5.0
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        described = []
        for proc in left:
            with contextlib.suppress(psutil.Error):
                age = time.time() - proc.create_time()
                described.append(
                    f"pid {proc.pid} ppid {proc.ppid()} age {age:.0f}s"
                    f"{self.spawned_by(proc.pid)}: {' '.join(proc.cmdline())}"
                )
                proc.kill()
        return described

    def spawned_by(self, pid: int) -> str:
        """The job whose attempt logged starting this grandchild, if any did."""
        needle = f"{GRANDCHILD_NOTE}{pid}\n"
        for log in (self.spool / "logs" / "jobs").glob("*.log"):
            with contextlib.suppress(OSError):
                if needle in log.read_text(errors="replace"):
                    return f" (grandchild of job {log.stem})"
        return ""

    # ------------------------------------------------------------ figures

    def census(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for status in STATUSES:
            try:
                names = [
                    n
                    for n in os.listdir(self.spool / status)
                    if n.endswith(".json") and not n.startswith(".")
                ]
            except FileNotFoundError:
                names = []
            if status == "running":
                found[status] = [p.job_id for n in names if (p := RunningName.parse(n))]
            else:
                found[status] = [n[: -len(".json")] for n in names]
        return found

    def log_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for path in (self.spool / "logs").glob("background_jobs.log*"):
            with contextlib.suppress(OSError):
                for line in path.read_text(errors="replace").splitlines():
                    parts = line.split(" ", 3)
                    if len(parts) >= 3 and parts[2] in LOG_EVENTS:
                        counts[parts[2]] += 1
        return counts

    def outcomes(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for status in TERMINAL:
            for path in (self.spool / status).glob("*.json"):
                with contextlib.suppress(OSError, ValueError):
                    for attempt in json.loads(path.read_text()).get("attempts", []):
                        counts[attempt.get("outcome", "?")] += 1
        return counts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timing(values: list[float]) -> str:
    if not values:
        return "n/a (no samples)"
    return (
        f"p50 {statistics.median(values):.2f}s p90 {percentile(values, 0.9):.2f}s "
        f"max {max(values):.2f}s (n={len(values)})"
    )


def print_recoveries(ch: Chaos) -> None:
    """Kill or pause to recovery, grouped by who could recover the claims."""

    def took(kind: str, path: str | None = None, *, over: bool = False) -> list[float]:
        out = []
        for w in ch.watches:
            value = w.took_over if over else w.took
            if w.kind == kind and w.claims and value is not None and path in (None, ch.path(w)):
                out.append(value)
        return out

    print(f"recovery after kill: {timing(took('kill'))} against lease {ch.args.lease:g}s")
    print(f"  taken over after:  {timing(took('kill', over=True))}")
    print(f"  steady same-host:  {timing(took('kill', 'lock', over=True))} (lock rule)")
    print(f"  steady other host: {timing(took('kill', 'lease', over=True))} (lease only)")
    print(f"  rescuers churned:  {timing(took('kill', 'churn', over=True))}")
    print(f"recovery in pause:   {timing(took('pause'))}")
    print(f"  taken over after:  {timing(took('pause', over=True))}")
    print(f"  steady rescuer:    {timing(took('pause', 'lease', over=True))} (lease)")


def report(
    ch: Chaos, drain_took: float, stop_problems: list[str], orphans: list[str], elapsed: float
) -> int:
    found = ch.census()
    submitted = set(ch.tally.submitted)
    everywhere = set().union(*(set(v) for v in found.values()))
    lost = sorted(submitted - everywhere)
    terminal_copies = Counter(i for s in TERMINAL for i in found[s])
    duplicates = sorted(i for i, n in terminal_copies.items() if n > 1)
    not_drained = sorted(set(found["pending"]) | set(found["running"]))
    runs: Counter[str] = Counter()
    if ch.ledger.exists():
        for line in ch.ledger.read_text().splitlines():
            runs[line.split(" ")[0]] += 1
    never_ran = sorted(i for i in found["completed"] if runs[i] == 0)
    histogram = Counter(runs[i] for i in submitted)
    corrupt = [n for n in os.listdir(ch.spool / "corrupt") if not n.endswith(".reason.txt")]

    unrecovered = [w for w in ch.watches if w.claims and w.took is None]
    unexpected = {s.index: s.unexpected_exits for s in ch.slots if s.unexpected_exits}
    a = ch.args
    print(f"elapsed:             {elapsed:.1f}s (chaos {a.seconds:g}s, drain {drain_took:.1f}s)")
    print(
        f"runners:             {a.runners} x {a.workers} workers, hosts "
        f"{','.join(s.host for s in ch.slots)}; lease {a.lease:g}s, "
        f"heartbeat {a.heartbeat:g}s; starts {sum(s.starts for s in ch.slots)}"
    )
    print(f"jobs submitted:      {len(submitted)}")
    print(f"completed:           {len(found['completed'])}")
    print(f"failed:              {len(found['failed'])}")
    print(f"cancelled:           {len(found['cancelled'])}")
    print(f"lost:                {len(lost)}")
    print(f"duplicate terminal:  {len(duplicates)}")
    print(f"not drained:         {len(not_drained)}")
    print(f"completed never ran: {len(never_ran)}")
    print(f"corrupt entries:     {len(corrupt)}")
    print(
        f"runs per job:        max {max(histogram) if histogram else 0}; histogram "
        + " ".join(f"{k}:{histogram[k]}" for k in sorted(histogram))
    )
    print("attempt outcomes:    " + " ".join(f"{k}:{v}" for k, v in sorted(ch.outcomes().items())))
    print(
        f"kills survived:      runner kills {ch.tally.runner_kills}, job kills "
        f"{ch.tally.job_kills}, pauses {ch.tally.pauses}, SIGTERMs {ch.tally.terms}"
    )
    print_recoveries(ch)
    print(f"never recovered:     {len(unrecovered)}")
    print(
        "engine events:       " + " ".join(f"{k}:{v}" for k, v in sorted(ch.log_counts().items()))
    )
    print(f"runner exits we did not cause: {unexpected or 'none'}")
    print(f"orphan processes:    {len(orphans)}")
    for line in orphans[:20]:
        print(f"  orphan {line}")
    for label, ids in (
        ("lost", lost),
        ("duplicate", duplicates),
        ("not drained", not_drained),
        ("never ran", never_ran),
    ):
        for job_id in ids[:10]:
            print(f"  {label}: {job_id}")
    for problem in stop_problems:
        print(f"  problem: {problem}")
    failures = [lost, duplicates, orphans, not_drained, never_ran, stop_problems]
    ok = not any(failures)
    if not ok or a.keep:
        print(f"spool kept at {ch.root}")
    print("RESULT: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=60.0, help="how long the chaos lasts")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--runners", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--lease", type=float, default=2.0)
    p.add_argument("--heartbeat", type=float, default=0.2)
    p.add_argument("--max-attempts", type=int, default=8)
    p.add_argument("--rate", type=float, default=5.0, help="jobs submitted per second")
    p.add_argument("--initial-jobs", type=int, default=100)
    p.add_argument("--drain-seconds", type=float, default=120.0)
    p.add_argument(
        "--spool",
        action="append",
        type=Path,
        metavar="DIR",
        help="a spool instead of a new temporary one (initialised through the first); repeat "
        "it with another mount of the same spool for each host: runner i uses the i-th, "
        "round-robin",
    )
    p.add_argument(
        "--hosts",
        default="host-a,host-a,host-b,host-c",
        help="JOBSPOOL_HOST of each runner, comma-separated, round-robin",
    )
    p.add_argument(
        "--no-watch",
        action="store_true",
        help="runners rescan only, no filesystem events (network filesystems)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary spool")
    p.add_argument(
        "--isolation",
        choices=["process", "pool"],
        default="process",
        help="one process per attempt, or pool workers (allowed_jobs.yaml's isolation)",
    )
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"seed: {args.seed}", flush=True)
    began = time.monotonic()
    ch = Chaos(args)
    print(f"spool: {ch.spool}", flush=True)
    try:
        ch.chaos()
        drain_took = ch.drain()
    finally:
        problems = ch.stop()
    orphans = ch.orphans()
    code = report(ch, drain_took, problems, orphans, time.monotonic() - began)
    if code == 0 and not args.keep:
        shutil.rmtree(ch.root, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
