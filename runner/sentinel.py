"""The spool's marker: what makes a directory a jobspool spool.

Owns ``SPOOL/.jobspool``, a small JSON file (``{"format": 1, "created_at":
...}``) that ``jobspool init`` writes last, once the layout (and, with a
group, the modes of :mod:`jobspool.access`) is in place. The dot keeps it
out of every listing of job files.

Invariants:

1. Only :func:`jobspool.initspool.init_spool` (``jobspool init``, and
   ``jobspool up`` for a project's own spool that does not exist yet) makes
   a directory a spool.
   Everything else opens one through :func:`check`, by way of
   :meth:`jobspool.spool.Spool.open`: the runner, the dashboard, the CLI and
   every submitter. A directory without the marker is refused before
   anything is written to it, so an unmounted network path (an empty mount
   point, or no directory at all) is never taken for an empty queue: a
   runner does not start a fresh local spool there, and a submitter does not
   acknowledge a job that the mount would hide once it comes back.
2. The marker is published whole: written to tmp/, then linked to its name
   without replacing (the spool's own rule, invariant 2 of
   :mod:`jobspool.spool`), then the root directory is synced. It is never
   rewritten: init on a spool that has one leaves it as it is.
3. A format newer than :data:`FORMAT` is refused: an engine never acts on a
   layout it does not know. A marker that is not a small JSON object with a
   whole-number format is refused too, with its reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jobspool.errors import SpoolError
from jobspool.fsops import FileOps, NotRegularFile

FORMAT = 1
MARKER = ".jobspool"
MAX_MARKER_BYTES = 4096


class NotASpool(SpoolError):
    """The directory has no valid marker of a format this jobspool knows."""


@dataclass(frozen=True)
class Marker:
    format: int
    created_at: str | None


def marker_path(root: Path) -> Path:
    return root / MARKER


def _no_marker(root: Path) -> NotASpool:
    return NotASpool(
        f"{root} is not a jobspool spool (no marker): run `jobspool init --spool {root}`, "
        "or check that the filesystem is mounted"
    )


def check(root: Path, ops: FileOps | None = None) -> Marker:
    """The marker of the spool at root; NotASpool with the reason if root is
    not a spool of a format we know (invariants 1 and 3)."""
    path = marker_path(root)
    try:
        data, _st = (ops or FileOps()).read_regular_stat(path, MAX_MARKER_BYTES)
    except FileNotFoundError:
        raise _no_marker(root) from None
    except NotADirectoryError:
        raise NotASpool(f"{root} is not a directory; a spool is a directory") from None
    except NotRegularFile:
        raise NotASpool(f"{path} is not a regular file; refusing to use {root}") from None
    except OSError as exc:
        raise NotASpool(
            f"cannot read {path}: {exc.strerror}: check the spool's permissions "
            f"(`jobspool doctor {root}`)"
        ) from None
    return _decode(path, data)


def _invalid(path: Path, reason: str) -> NotASpool:
    return NotASpool(
        f"{path} is not a valid spool marker ({reason}): move it aside and run "
        f"`jobspool init --spool {path.parent}`"
    )


def _decode(path: Path, data: bytes) -> Marker:
    if len(data) > MAX_MARKER_BYTES:
        raise _invalid(path, f"larger than {MAX_MARKER_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        raise _invalid(path, "not JSON") from None
    if not isinstance(doc, dict):
        raise _invalid(path, "not a JSON object")
    fmt = doc.get("format")
    if type(fmt) is not int or fmt < 1:
        raise _invalid(path, "no whole-number format")
    if fmt > FORMAT:
        raise NotASpool(
            f"{path.parent} has spool format {fmt}; this jobspool knows format {FORMAT} "
            "at most: upgrade jobspool to use this spool"
        )
    created = doc.get("created_at")
    return Marker(format=fmt, created_at=created if isinstance(created, str) else None)


def encode_marker(now: datetime) -> bytes:
    created = now.isoformat().replace("+00:00", "Z")
    return (json.dumps({"format": FORMAT, "created_at": created}) + "\n").encode()
