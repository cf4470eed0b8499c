"""Jobs used by the benchmarks."""

from __future__ import annotations

import time
from pathlib import Path


class NoOp:
    def run(self) -> None:
        return None


class Stamp:
    def now(self) -> float:
        """When the attempt's code began to run (wall clock, this host)."""
        return time.time()


class Mark:
    def touch(self, path: str) -> None:
        """Write when the attempt's code began to run (wall clock) to path."""
        Path(path).write_text(repr(time.time()))
