"""Geometry of the completed/failed bar charts, drawn as SVG by the templates (no I/O).

Owns scaling only: buckets in, rectangles and tick labels out. The bars are
drawn in a fixed coordinate space that the SVG ``viewBox`` stretches to the
page width; text is not: the tick labels are placed in percent of the width
in an SVG without a viewBox, so they keep their CSS size in pixels (a label
inside the stretched viewBox shrank to about 7 px on a narrow screen). The
chart needs no JavaScript and no inline style (the CSP forbids both), and
every bar has a ``<title>`` so hovering shows its exact numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobspool.dashboard.present import fmt_clock
from jobspool.dashboard.stats import Bucket

WIDTH = 720
HEIGHT = 150
TOP = 4
BOTTOM = 1


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_h: float
    bad_y: float
    bad_h: float
    title: str


@dataclass(frozen=True)
class Tick:
    x: float  # in the bars' coordinates
    label: str
    pct: float  # where the label goes, in percent of the chart's width
    anchor: str  # SVG text-anchor: "start", "middle" or "end" (no label past an edge)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    peak: int
    completed: int
    failed: int
    unit: str


def bar_chart(buckets: list[Bucket], *, hourly: bool) -> Chart:
    n = max(1, len(buckets))
    slot = WIDTH / n
    gap = min(2.0, slot * 0.2)
    baseline = HEIGHT - BOTTOM
    room = baseline - TOP
    peak = max((b.completed + b.failed for b in buckets), default=0)
    scale = room / peak if peak else 0.0
    every = 6 if hourly else 10
    bars, ticks = [], []
    for i, b in enumerate(buckets):
        x = i * slot
        ok_h = b.completed * scale
        bad_h = b.failed * scale
        when = fmt_clock(b.start, hours_only=hourly)
        title = f"{when} UTC: {b.completed} completed, {b.failed} failed"
        bars.append(
            Bar(
                x=round(x + gap / 2, 2),
                width=round(slot - gap, 2),
                ok_y=round(baseline - ok_h, 2),
                ok_h=round(ok_h, 2),
                bad_y=round(baseline - ok_h - bad_h, 2),
                bad_h=round(bad_h, 2),
                title=title,
            )
        )
        if int(b.start // (3600 if hourly else 60)) % every == 0:
            middle = (x + slot / 2) / WIDTH * 100
            anchor = "start" if middle < 6 else "end" if middle > 94 else "middle"
            ticks.append(Tick(x=round(x + 1, 2), label=when, pct=round(middle, 3), anchor=anchor))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        baseline=baseline,
        bars=bars,
        ticks=ticks,
        peak=peak,
        completed=sum(b.completed for b in buckets),
        failed=sum(b.failed for b in buckets),
        unit="hour" if hourly else "minute",
    )
