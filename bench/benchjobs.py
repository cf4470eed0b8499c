"""Jobs used by the benchmarks."""

from __future__ import annotations

import time


class NoOp:
    def run(self) -> None:
        return None


class Stamp:
    def now(self) -> float:
        """When the attempt's code began to run (wall clock, this host)."""
        return time.time()
