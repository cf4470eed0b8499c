"""Recovery of every enumerated power-loss state, and the invariants checked after it.

Two recoveries are run on each state, both on real files with real runners:

* ``tidy``: a Spool on the state runs ``resolve_duplicates(min_age=0)`` and
  ``clean_tmp(max_age=0)``; the result is checked, then real ``runner
  --burst`` processes run until nothing is left to do;
* ``restart``: what an operator does after the reboot, nothing but real
  ``runner --burst`` processes on the state as the crash left it (the
  runner's own startup does the cleaning, with its own age limits).

Every file of a state is aged by ``REBOOT_SECONDS`` (longer than the lease,
far shorter than the tmp age limit), as it would be after a reboot.

Invariants: I1 a job acknowledged before the crash is never lost (the id is
in exactly one status directory, or it completed), and a transition that had
returned is never undone; I2 at most one terminal status per id; I3 no
partial or unparsable file in a status directory (before and after
recovery), and a job the operation submits is absent or whole, never sent to
corrupt/; after the runners: nothing in running/, every job terminal, a job
that was already terminal never runs again, every file in corrupt/ has its
reason. The per-job checks hold for every job the operation acknowledges
(``Recorded.job_ids``: one, or all of a batch submit).

Runners are separate processes and cost about a second each, so states that
give a runner the same input share one run, whichever recovery produced
them (:func:`input_key`): for ``tidy`` the input is the spool after the
clean-up, for ``restart`` the raw state. corrupt/ is left out of the input
(runners never read it), and so are tmp files with no other name (runners
never read tmp/; ``clean_tmp`` decides by age alone, and all files here have
the same age). Names that share a file are part of the input.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.crashops import LEDGER, Recorded, write_project
from bench.crashsim import (
    Call,
    DiskState,
    crash_states,
    final_state,
    live_files,
    materialise,
    snapshot,
)
from jobspool import codec, leftovers
from jobspool.cli import runner_argv
from jobspool.errors import InvalidJobFile
from jobspool.fsops import FileOps
from jobspool.names import is_job_name, job_id_of
from jobspool.spool import Spool
from jobspool.states import PRECEDENCE, Status

REPO = Path(__file__).resolve().parents[1]
REBOOT_SECONDS = 90.0
MAX_BURSTS = 4
BURST_TIMEOUT = 60.0
PARALLEL_RUNNERS = 2
STATUS_DIRS = frozenset(s.value for s in Status)
TERMINAL_DIRS = frozenset({"completed", "failed", "cancelled"})
FLUSHES = frozenset({"fsync_file", "syncfs", "fsync_dir"})
Files = Mapping[str, bytes]


# ---------------------------------------------------------------- reading a state


def job_copies(files: Files) -> dict[str, list[str]]:
    """Job id -> the status directories holding a copy of it."""
    out: dict[str, list[str]] = {}
    for path in sorted(files):
        folder, _, name = path.partition("/")
        if folder in STATUS_DIRS and "/" not in name and is_job_name(name):
            out.setdefault(job_id_of(Status(folder), name), []).append(folder)
    return out


def unparsable(files: Files) -> list[str]:
    """Files in status directories that are not a complete job (I3)."""
    bad = []
    for path, data in sorted(files.items()):
        folder = path.partition("/")[0]
        if folder not in STATUS_DIRS:
            continue
        try:
            codec.decode_job(data)
        except InvalidJobFile as exc:
            bad.append(f"{path}: {exc}")
    return bad


def missing_reasons(files: Files) -> list[str]:
    entries = [p for p in files if p.startswith("corrupt/")]
    return [p for p in entries if not p.endswith(".reason.txt") and f"{p}.reason.txt" not in files]


def revision_of(files: Files, folder: str, job_id: str) -> int | None:
    prefix = f"{folder}/"
    for path, data in files.items():
        if path.startswith(prefix) and job_id_of(Status(folder), path[len(prefix) :]) == job_id:
            try:
                return codec.decode_job(data).revision
            except InvalidJobFile:
                return None
    return None


def terminal_copy(files: Files, job_id: str) -> str | None:
    """The terminal status a state holds for job_id (the strongest, if several)."""
    found = [d for d in job_copies(files).get(job_id, []) if d in TERMINAL_DIRS]
    return max(found, key=lambda d: PRECEDENCE[Status(d)]) if found else None


# ---------------------------------------------------------------- the checks


@dataclass
class Case:
    """One state of one operation, with what its acknowledgement promises."""

    rec: Recorded
    state: DiskState
    acked: bool  # the operation had returned before the crash
    index: int = 0  # among the states of its crash point

    @property
    def must_exist(self) -> bool:
        return (self.rec.op.known_before or self.acked) and not self.rec.op.removes

    def label(self, mode: str) -> str:
        return f"{self.rec.op.name}/{mode} k={self.state.k}"


def check_raw(case: Case) -> list[str]:
    """What a reader could see right after the crash, before any recovery."""
    files = case.state.paths()
    out = [f"{case.label('raw')}: I3 {bad}" for bad in unparsable(files)]
    return out + half_removed(case, files, case.label("raw"))


def half_removed(case: Case, files: Files, label: str, *, settled: bool = False) -> list[str]:
    """For an operation that removes its job (a purge): record and log go
    together, a returned removal stays done, and (settled) nothing is left
    staged in purge/ once runners ran."""
    if not case.rec.op.removes:
        return []
    job_id = case.rec.job_id
    where = job_copies(files).get(job_id, [])
    staged = [p for p in files if p.startswith("purge/") and p.endswith(f"~{job_id}.json")]
    log = f"logs/jobs/{job_id}.log" in files
    out = []
    if where and not log:
        out.append(f"{label}: {job_id} is in {where} but its log is gone")
    if not where and not staged and log:
        out.append(f"{label}: {job_id} is gone but its log is left")
    if case.acked and (where or staged or log):
        out.append(f"{label}: a returned purge of {job_id} left {where} {staged} log={log}")
    if settled and staged:
        out.append(f"{label}: purge/ still holds {staged}")
    return out


def check_tidied(case: Case, files: Files) -> list[str]:
    """After resolve_duplicates and clean_tmp: one copy per id, nothing lost or undone."""
    out = []
    label = case.label("tidy")
    copies = job_copies(files)
    for job_id, where in copies.items():
        if len(where) != 1:
            out.append(f"{label}: {job_id} is in {where} after recovery")
    done = case.rec.op.done
    for job_id in case.rec.job_ids:
        if case.must_exist and job_id not in copies:
            out.append(f"{label}: I1 acknowledged job {job_id} lost: {sorted(files)}")
        if case.acked and done is not None and copies.get(job_id) == [done.value]:
            revision = revision_of(files, done.value, job_id)
            if revision != case.rec.done_revisions[job_id]:
                out.append(f"{label}: {job_id} in {done} has revision {revision}, not the new one")
        elif case.acked and done is not None:
            out.append(f"{label}: returned {done} transition undone: {copies.get(job_id)}")
    out += submitted_in_corrupt(case, files, label)
    out += [f"{label}: tmp/ not cleaned: {p}" for p in files if p.startswith("tmp/")]
    out += half_removed(case, files, label)
    out += [f"{label}: I3 {bad}" for bad in unparsable(files)]
    out += [f"{label}: no reason for {p}" for p in missing_reasons(files)]
    return out


@dataclass
class Outcome:
    """What the runners left: the files, the runs of the job, runner errors."""

    files: dict[str, bytes]
    runs: dict[str, int]  # job id -> its runs in the ledger
    bursts: int
    errors: list[str] = field(default_factory=list)


def check_final(case: Case, mode: str, before: Files, after: Outcome) -> list[str]:
    """After the runners: nothing running, all terminal, terminal jobs never run again."""
    label = case.label(mode)
    files = after.files
    out = [f"{label}: runner: {e}" for e in after.errors]
    out += [f"{label}: left in running/: {p}" for p in files if p.startswith("running/")]
    copies = job_copies(files)
    for job_id, where in copies.items():
        if len(where) != 1 or where[0] not in TERMINAL_DIRS:
            out.append(f"{label}: {job_id} ends in {where}")
    out += half_removed(case, files, label, settled=True)
    had = job_copies(before)
    for job_id in case.rec.job_ids:
        present = job_id in had
        if (case.must_exist or present) and job_id not in copies:
            out.append(f"{label}: I1 job {job_id} lost; corrupt/ holds {_corrupt(files)}")
        elif present or case.must_exist:
            where = copies.get(job_id, [])
            out += _check_fate(case, job_id, label, before, where, runs=after.runs.get(job_id, 0))
    out += submitted_in_corrupt(case, files, label)
    out += [f"{label}: I3 {bad}" for bad in unparsable(files)]
    out += [f"{label}: no reason for {p}" for p in missing_reasons(files)]
    return out


def submitted_in_corrupt(case: Case, files: Files, label: str) -> list[str]:
    """A job the operation submits is absent or whole: never garbage a runner quarantines."""
    if case.rec.op.known_before:
        return []  # a losing duplicate of a known job goes to corrupt/ by design
    bad = _corrupt(files)
    return [
        f"{label}: I3 submitted job {job_id} in corrupt/: {bad}"
        for job_id in case.rec.job_ids
        if any(job_id in p for p in bad)
    ]


def _check_fate(
    case: Case, job_id: str, label: str, before: Files, where: list[str], *, runs: int
) -> list[str]:
    done = case.rec.op.done
    settled = terminal_copy(before, job_id)
    if case.acked and done is not None and done.terminal:
        settled = done.value
    if settled is not None:
        if where != [settled] or runs:
            return [f"{label}: {job_id} was {settled}; ends {where} after {runs} run(s)"]
        return []
    if where != ["completed"] or runs < 1:
        return [f"{label}: {job_id} ends {where} after {runs} run(s), expected completed"]
    return []


def _corrupt(files: Files) -> list[str]:
    return sorted(p for p in files if p.startswith("corrupt/") and not p.endswith(".txt"))


# ---------------------------------------------------------------- runners


def burst_once(project: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSPOOL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    cmd = runner_argv(str(project / "allowed_jobs.yaml"), "--burst", "--quiet")
    return subprocess.run(
        cmd,
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=BURST_TIMEOUT,
        check=False,
    )


def _settled(files: Files) -> bool:
    copies = job_copies(files)
    return all(len(w) == 1 and w[0] in TERMINAL_DIRS for w in copies.values())


def run_bursts(project: Path, job_ids: list[str]) -> Outcome:
    """Burst runners, one after another, until every job is terminal (bounded)."""
    errors: list[str] = []
    bursts = 0
    files = live_files(project / "spool")
    while bursts < MAX_BURSTS and (bursts == 0 or not _settled(files)):
        done = burst_once(project)
        bursts += 1
        if done.returncode != 0 or "Traceback" in done.stderr:
            errors.append(f"exit {done.returncode}: {done.stderr[-2000:]}")
            break
        files = live_files(project / "spool")
    runs = {job_id: ledger_runs(project, job_id) for job_id in job_ids}
    return Outcome(files, runs, bursts, errors)


def ledger_runs(project: Path, job_id: str) -> int:
    path = project / LEDGER
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.split(" ")[0] == job_id)


# ---------------------------------------------------------------- one operation


@dataclass
class OpReport:
    """Figures for one operation."""

    op: str
    calls: list[str]
    states_per_point: list[int]
    sampled: bool
    runner_inputs: int = 0
    bursts: int = 0
    claim_undone: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def in_mode(self, mode: str) -> list[str]:
        """Violations found in one recovery mode (raw, tidy, restart, log)."""
        return [v for v in self.violations if v.startswith(f"{self.op}/{mode}")]

    @property
    def points(self) -> int:
        return len(self.states_per_point)

    @property
    def states(self) -> int:
        return sum(self.states_per_point)


@dataclass
class _Group:
    """States that give a runner the same input; the first one's project runs."""

    project: Path
    cases: list[tuple[Case, str, dict[str, bytes]]] = field(default_factory=list)


InputKey = tuple[tuple[str, tuple[str, ...], bytes], ...]


def input_key(spool_dir: Path) -> InputKey:
    """What a runner started on spool_dir reads: names, contents, and which names share a file.

    corrupt/ is left out (runners never read it) and so are tmp files with no
    other name (runners never read tmp/, and every file here has the same age).
    """
    snap = snapshot(spool_dir)
    names_of: dict[int, list[str]] = {}
    for path, node in snap.names.items():
        names_of.setdefault(node, []).append(path)
    key = []
    for path, node in sorted(snap.names.items()):
        names = names_of[node]
        if path.startswith("corrupt/") or all(n.startswith("tmp/") for n in names):
            continue
        key.append((path, tuple(sorted(n for n in names if n != path)), snap.contents[node]))
    return tuple(key)


def tidy(project: Path) -> dict[str, bytes]:
    spool = Spool(project / "spool", durable=True, ops=FileOps())
    leftovers.resolve_duplicates(spool, min_age=0)
    leftovers.clean_tmp(spool, max_age=0)
    return live_files(project / "spool")


class _Runs:
    """Projects to hand to runners, one per distinct runner input."""

    def __init__(self) -> None:
        self.groups: dict[InputKey, _Group] = {}

    def add(self, project: Path, case: Case, mode: str, before: dict[str, bytes]) -> None:
        group = self.groups.setdefault(input_key(project / "spool"), _Group(project))
        group.cases.append((case, mode, before))

    def run(self, rec: Recorded, report: OpReport) -> None:
        groups = list(self.groups.values())
        with ThreadPoolExecutor(PARALLEL_RUNNERS) as pool:
            outcomes = list(pool.map(lambda g: run_bursts(g.project, rec.job_ids), groups))
        report.runner_inputs = len(groups)
        for group, outcome in zip(groups, outcomes, strict=True):
            report.bursts += outcome.bursts
            for case, mode, before in group.cases:
                report.violations += check_final(case, mode, before, outcome)


def _one_state(case: Case, dirs: list[str], work: Path, report: OpReport) -> Path:
    """Check the raw state, tidy a real copy of it and check again; returns that copy."""
    report.violations += check_raw(case)
    report.claim_undone += _claim_undone(case)
    tidied_project = _materialised(case, dirs, work / "tidy")
    report.violations += check_tidied(case, tidy(tidied_project))
    return tidied_project


def _materialised(case: Case, dirs: list[str], parent: Path) -> Path:
    project = parent / f"k{case.state.k}-{case.index}"
    write_project(project)
    materialise(case.state, dirs, project / "spool", time.time() - REBOOT_SECONDS)
    return project


def verify_operation(
    rec: Recorded, work: Path, seed: int, *, calls: list[Call] | None = None, runners: bool = True
) -> OpReport:
    """Enumerate the crash states of rec (or of another log of it), recover, check.

    Without runners only the raw and tidied states are checked.
    """
    started = time.monotonic()
    log = rec.calls if calls is None else calls
    points = crash_states(rec.snap, log, seed)
    report = OpReport(
        op=rec.op.name,
        calls=[c.describe() for c in log],
        states_per_point=[len(p.states) for p in points],
        sampled=any(p.sampled for p in points),
    )
    if final_state(rec.snap, log) != rec.live:
        report.violations.append(f"{rec.op.name}/log: the log does not explain the live spool")
    runs = _Runs()
    for point in points:
        for i, state in enumerate(point.states):
            case = Case(rec, state, acked=point.k == len(log), index=i)
            tidied_project = _one_state(case, rec.snap.dirs, work, report)
            if runners:
                runs.add(tidied_project, case, "tidy", live_files(tidied_project / "spool"))
                raw_project = _materialised(case, rec.snap.dirs, work / "restart")
                runs.add(raw_project, case, "restart", dict(state.paths()))
    if runners:
        runs.run(rec, report)
    report.seconds = time.monotonic() - started
    return report


def _claim_undone(case: Case) -> int:
    """A returned claim that a power loss can send back to pending/ (allowed, counted)."""
    if case.rec.op.name != "claim" or not case.acked:
        return 0
    copies = job_copies(case.state.paths())
    return sum(copies.get(job_id) == ["pending"] for job_id in case.rec.job_ids)


# ---------------------------------------------------------------- are the fsyncs needed?


@dataclass
class FsyncVerdict:
    """What the raw and tidied states show when one fsync of the log is left out."""

    index: int
    call: Call
    violations: list[str]

    @property
    def needed(self) -> bool:
        return bool(self.violations)


def fsync_necessity(rec: Recorded, work: Path, seed: int) -> list[FsyncVerdict]:
    """Leave out each fsync (and syncfs) in turn and enumerate again (without runners)."""
    verdicts = []
    for i, call in enumerate(rec.calls):
        if call.kind not in FLUSHES:
            continue
        log = rec.calls[:i] + rec.calls[i + 1 :]
        found = verify_operation(rec, work / f"without-{i}", seed, calls=log, runners=False)
        verdicts.append(FsyncVerdict(i, call, found.violations))
    return verdicts
