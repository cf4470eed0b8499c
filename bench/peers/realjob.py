"""The realistic job body for peers that import a job function by name (RQ).

Same imports, params model and call as REALISTIC_JOB in bench_jobspool.py: json, datetime,
pathlib and pydantic, the params validated through a pydantic model, then jobrec.record.
A module-level function because RQ enqueues functions, not methods of a class.
"""
import json
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

import jobrec


class Mark(BaseModel):
    path: Path
    seq: int
    at: datetime | None = None


def record(mark: str, seq: str) -> str:
    m = Mark(path=mark, seq=seq, at=datetime.now(timezone.utc))
    jobrec.record(str(m.path), m.seq)
    return json.dumps({"seq": m.seq})
