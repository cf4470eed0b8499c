"""Helpers for the hostile-input tests: planting files and judging where they went.

Planting works on the real directories of a test's private spool. A dropped
file gets an old mtime because the runner gives a young file that does not
parse time for its writer to finish; an old one is judged at once.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.conftest import SpoolEnv

OLD_SECONDS = 120.0
STATUSES = ("pending", "running", "completed", "failed", "cancelled")


def marker_job(path: Path, text: str | None = None) -> bytes:
    """A compact, valid Marker job; the last byte is its closing brace."""
    params: list[Any] = [str(path)] if text is None else [str(path), text]
    doc = {"job": "Marker", "method": "touch", "params": params}
    return json.dumps(doc, separators=(",", ":")).encode()


def age(path: Path, seconds: float = OLD_SECONDS) -> None:
    """Set mtime (and atime) seconds into the past, without following a link."""
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def drop_old(env: SpoolEnv, name: str, data: bytes) -> Path:
    """Write data to tmp/, age it, rename it into pending/ as name."""
    (env.spool / "pending").mkdir(parents=True, exist_ok=True)
    (env.spool / "tmp").mkdir(parents=True, exist_ok=True)
    tmp = env.spool / "tmp" / f"hostile-{secrets.token_hex(6)}"
    tmp.write_bytes(data)
    age(tmp)
    dst = env.spool / "pending" / name
    os.rename(tmp, dst)
    return dst


def plant_socket(dst: Path) -> None:
    """A listening-capable UNIX socket file at dst.

    Socket paths are limited to about 100 bytes, so it is bound under a short
    temporary directory and renamed into place (rename moves the entry).
    """
    short = Path(tempfile.mkdtemp(prefix="sk", dir="/tmp"))
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(short / "s"))
        finally:
            sock.close()
        os.rename(short / "s", dst)
    finally:
        os.rmdir(short)


def snapshot(path: Path) -> tuple[bytes, int, int]:
    """Content, mtime_ns and inode of a regular file (following nothing)."""
    st = os.lstat(path)
    return path.read_bytes(), st.st_mtime_ns, st.st_ino


def job_names(env: SpoolEnv, status: str) -> list[str]:
    """Job-looking names in one status directory (dot files excluded)."""
    folder = env.spool / status
    if not folder.exists():
        return []
    return sorted(n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith("."))


def all_jobs(env: SpoolEnv) -> dict[str, list[str]]:
    return {s: job_names(env, s) for s in STATUSES}


def quarantined_as(env: SpoolEnv, name: str) -> Path | None:
    """Where corrupt/ keeps a file first named name.

    Under its own name, or, for names too long to take a suffix, under a
    shortened one whose reason file records where it came from.
    """
    corrupt = env.spool / "corrupt"
    if os.path.lexists(corrupt / name):
        return corrupt / name
    origin = f"from: {env.spool / 'pending' / name}"
    for note in corrupt.glob("*.reason.txt"):
        if origin in note.read_text(errors="surrogateescape").splitlines():
            return note.with_name(note.name[: -len(".reason.txt")])
    return None


def corrupt_problem(env: SpoolEnv, name: str, data: bytes, reason: str) -> str | None:
    """None if name sits in corrupt/ byte for byte with a reason containing reason."""
    kept = quarantined_as(env, name)
    if kept is None:
        return f"{name!r}: not in corrupt/"
    note = kept.with_name(f"{kept.name}.reason.txt")
    if kept.read_bytes() != data:
        return f"{name!r}: bytes changed in corrupt/"
    if not os.path.isfile(note):  # False too when the name cannot exist (too long)
        return f"{name!r}: no reason file {note.name!r} beside it"
    text = note.read_text(errors="replace")
    if reason not in text:
        return f"{name!r}: reason {text.splitlines()[0]!r} lacks {reason!r}"
    return None


def failed_problem(env: SpoolEnv, job_id: str, error_type: str, message: str) -> str | None:
    """None if job_id is in failed/ with that error and was never retried."""
    path = env.spool / "failed" / f"{job_id}.json"
    if not path.exists():
        return f"{job_id}: not in failed/ (pending={job_names(env, 'pending')})"
    rec: dict[str, Any] = json.loads(path.read_text())
    err = rec.get("error") or {}
    if err.get("type") != error_type:
        return f"{job_id}: error {err}, expected type {error_type}"
    if message not in err.get("message", ""):
        return f"{job_id}: message {err.get('message')!r} lacks {message!r}"
    if not rec.get("reason"):
        return f"{job_id}: no reason in the record"
    outcomes = [a["outcome"] for a in rec.get("attempts", [])]
    if outcomes not in ([], ["rejected"]):
        return f"{job_id}: attempts {outcomes}; a rejected job must never be retried"
    return None


def files_under(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every regular file under root."""
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            full = Path(dirpath) / name
            if full.is_file() and not full.is_symlink():
                out[str(full.relative_to(root))] = full.read_bytes()
    return out
