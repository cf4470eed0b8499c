"""Requests to runners: the files in control/.

Owns the one kind of message a person leaves for the runners, a request
about a job (today: ``cancel`` a running job), stored as
``control/<kind>~<id>.json``. Requests are published like job files
(written to tmp/, linked into place, the directory synced: invariant 2), so
a request is whole or absent and survives a power loss once made. Making
one is idempotent: the link never replaces an existing request
(invariant 4), and the first request made stands. Reading skips names
whose id part is not a valid id and files that are not JSON objects, so
nothing planted here can crash a runner; clearing a request that is gone
is not an error. Every change goes through ``spool.ops`` (invariant 10).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobspool import codec
from jobspool.errors import InvalidJobFile
from jobspool.model import is_valid_id, utcnow
from jobspool.names import JSON, RUN_SEP
from jobspool.spool import Spool


def _request_path(spool: Spool, kind: str, job_id: str) -> Path:
    return spool.dir("control") / f"{kind}{RUN_SEP}{job_id}{JSON}"


def request(spool: Spool, kind: str, job_id: str, data: dict[str, Any]) -> None:
    """Leave a durable request for runners (idempotent)."""
    body = codec.json_bytes({"kind": kind, "job": job_id, "at": utcnow().isoformat(), **data})
    tmp = spool.write_tmp(body, kind)
    try:
        spool.ops.link(tmp, _request_path(spool, kind, job_id))
    except FileExistsError:
        pass
    finally:
        spool.ops.unlink_quiet(tmp)
    spool.sync_dir(spool.dir("control"))


def requests(spool: Spool, kind: str) -> dict[str, dict[str, Any]]:
    """Open requests of one kind, by job id."""
    out: dict[str, dict[str, Any]] = {}
    prefix = kind + RUN_SEP
    for name in spool.names("control"):
        job_id = name[len(prefix) : -len(JSON)]
        if not name.startswith(prefix) or not is_valid_id(job_id):
            continue
        try:
            data = codec.parse_json(spool.read_bytes(spool.dir("control") / name))
        except (OSError, InvalidJobFile):
            continue
        out[job_id] = data if isinstance(data, dict) else {}
    return out


def clear_request(spool: Spool, kind: str, job_id: str) -> None:
    spool.ops.unlink_quiet(_request_path(spool, kind, job_id))
