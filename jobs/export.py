"""ExportJob: writes a CSV report, reporting progress as it goes.

Shows the habits a real job needs under at-least-once delivery: it writes to
a temporary name and renames into place, so a retried attempt never leaves a
half-written file, and it reports progress the dashboard can show.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from jobspool import current_job, report_progress


class ExportJob:
    def export(self, path: str, rows: int = 100, pause: float = 0.0) -> dict[str, object]:
        """Write ``rows`` rows of squares to the CSV file at ``path``."""
        if rows < 0:
            raise ValueError("rows must be zero or more")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        ctx = current_job()
        tmp = target.with_name(f".{target.name}.{ctx.id if ctx else 'inline'}.part")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["n", "square"])
            step = max(1, rows // 20)
            for n in range(rows):
                writer.writerow([n, n * n])
                if n % step == 0:
                    report_progress((n + 1) / max(rows, 1), f"{n + 1} of {rows} rows")
                    if pause:
                        time.sleep(pause)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        report_progress(1.0, f"wrote {rows} rows")
        print(f"ExportJob: wrote {rows} rows to {target}", flush=True)
        return {"path": str(target), "rows": rows}
