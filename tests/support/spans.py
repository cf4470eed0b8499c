"""A job that records when it ran, for tests of limits across runners."""

from __future__ import annotations

import os
import time
from pathlib import Path

from jobspool import current_job


class Span:
    """Writes ``<dir>/<job id>-<attempt>.span`` holding "start end" (wall clock)."""

    def run(self, folder: str, seconds: float) -> str:
        ctx = current_job()
        name = f"{ctx.id if ctx else os.getpid()}-{ctx.attempt if ctx else 0}"
        start = time.time()
        time.sleep(seconds)
        Path(folder, f"{name}.span").write_text(f"{start} {time.time()}")
        return name


def spans(folder: Path) -> list[tuple[float, float]]:
    out = []
    for path in folder.glob("*.span"):
        start, end = path.read_text().split()
        out.append((float(start), float(end)))
    return out


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end before a start at a tie)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = now = 0
    for _t, step in events:
        now += step
        most = max(most, now)
    return most
