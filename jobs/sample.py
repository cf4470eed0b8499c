"""SampleJob, as in the system jobspool ports: process some data."""

from __future__ import annotations

from typing import Any

from jobspool import current_job


class SampleJob:
    def process(self, *items: Any, **named: Any) -> dict[str, Any]:
        """Accepts positional params (``runjob SampleJob process p1 p2``) or keywords."""
        ctx = current_job()
        where = f"job {ctx.id} attempt {ctx.attempt}" if ctx else "inline"
        print(f"SampleJob.process ({where}): items={list(items)} named={named}", flush=True)
        return {"processed": list(items), "named": named, "count": len(items) + len(named)}
