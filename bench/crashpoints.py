"""Power-loss figures: crash points and states per operation, states checked, violations.

    python bench/crashpoints.py [--seed N] [--no-runners] [--keep]

Runs the enumeration of tests/engine/test_powerloss.py (model: bench/crashsim.py)
on fresh temporary spools and prints one line per operation, the totals,
which fsyncs the invariants rest on, and every violation found. Exit status
1 when any violation is found.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.crashcheck import (  # noqa: E402
    FsyncVerdict,
    OpReport,
    fsync_necessity,
    verify_operation,
)
from bench.crashops import OPERATIONS, record  # noqa: E402

MODES = ("raw", "tidy", "restart")


def row(report: OpReport) -> str:
    counts = " ".join(f"{m}={len(report.in_mode(m))}" for m in MODES)
    return (
        f"{report.op:<13} calls={len(report.calls):<2} points={report.points:<2} "
        f"states={report.states:<3} per-point={report.states_per_point} "
        f"runner-inputs={report.runner_inputs:<2} bursts={report.bursts:<2} "
        f"violations: {counts}  ({report.seconds:.1f}s)"
    )


def fsync_line(op: str, verdicts: list[FsyncVerdict]) -> str:
    if not verdicts:
        return f"  {op:<13} no fsync"
    parts = []
    for v in verdicts:
        target = v.call.path if v.call.kind == "fsync_dir" else "tmp file"
        word = "needed" if v.needed else "covered by resolve_duplicates"
        parts.append(f"{v.call.kind}({target}): {word}")
    return f"  {op:<13} " + "; ".join(parts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=20261129, help="seed for sampled subsets")
    p.add_argument("--no-runners", action="store_true", help="check raw and tidied states only")
    p.add_argument("--keep", action="store_true", help="keep the materialised states")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jobspool-crashpoints-"))
    started = time.monotonic()
    reports: list[OpReport] = []
    necessity: dict[str, list[FsyncVerdict]] = {}
    try:
        for name, op in OPERATIONS.items():
            rec = record(op, work / name / "recorded")
            report = verify_operation(rec, work / name, args.seed, runners=not args.no_runners)
            reports.append(report)
            necessity[name] = fsync_necessity(rec, work / name / "fsyncs", args.seed)
            print(row(report), flush=True)
    finally:
        if args.keep:
            print(f"states kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    violations = [v for r in reports for v in r.violations]
    print(
        f"total: crash points={sum(r.points for r in reports)} "
        f"states checked={sum(r.states for r in reports)} (each raw, tidied, and restarted) "
        f"runner inputs={sum(r.runner_inputs for r in reports)} "
        f"bursts={sum(r.bursts for r in reports)} violations={len(violations)} "
        f"seed={args.seed} sampled={any(r.sampled for r in reports)} "
        f"time={time.monotonic() - started:.1f}s"
    )
    undone = sum(r.claim_undone for r in reports)
    print(f"returned claims a power loss sends back to pending/ (attempt uncounted): {undone}")
    print("fsyncs (left out one at a time):")
    for name, verdicts in necessity.items():
        print(fsync_line(name, verdicts))
    for v in violations:
        print(f"VIOLATION {v}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
