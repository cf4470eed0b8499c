"""``jobspool init``: making a directory a spool.

Owns the one way a spool comes to be (invariant 1 of
:mod:`jobspool.sentinel`): create the layout, give it the threat model's
modes when a group is named (:mod:`jobspool.access`), and publish the marker
last, so that a directory is a spool only once all of it is in place. Also
owns the quick start's rule (:func:`is_fresh_project_spool`): ``jobspool
up``, and a runner started on an explicit ``--config``, may initialise a
spool that does not exist at all and lies inside the project directory,
where it can be no unmounted mount point.

Invariants:

1. Nothing is created before the request is known to be good: a group that
   does not exist, a path that is a file, a marker of a newer format are
   refused first.
2. Init is repeatable: on a spool that has its marker it only creates
   missing directories (and sets the modes, with a group); the marker stays.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobspool import access, sentinel
from jobspool.errors import SpoolError
from jobspool.model import utcnow
from jobspool.sentinel import Marker
from jobspool.spool import Spool


@dataclass(frozen=True)
class Initialised:
    root: Path
    marker: Marker
    created: bool  # False: the spool had its marker already
    group: str | None


def init_spool(
    root: Path, *, log_dir: Path | None = None, group: str | None = None, durable: bool = True
) -> Initialised:
    """Make root a spool (or complete one); see the module's invariants."""
    gid = access.resolve_group(group) if group is not None else None
    if os.path.lexists(root) and not root.is_dir():
        raise SpoolError(f"{root} exists and is not a directory; a spool is a directory")
    existing = _existing_marker(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpoolError(f"cannot create {root}: {exc.strerror}") from None
    spool = Spool(root, log_dir=log_dir, durable=durable)
    if gid is not None and group is not None:
        access.apply_group(spool, gid, group)
    if existing is not None:
        return Initialised(spool.root, existing, False, group)
    return Initialised(spool.root, _publish_marker(spool), True, group)


def _existing_marker(root: Path) -> Marker | None:
    """The marker if root has one; a newer or broken one is refused (invariant 1)."""
    if not os.path.lexists(sentinel.marker_path(root)):
        return None
    return sentinel.check(root)


def _publish_marker(spool: Spool) -> Marker:
    """Whole, without replacing, then durable (sentinel invariant 2)."""
    tmp = spool.write_tmp(sentinel.encode_marker(utcnow()), "marker")
    try:
        spool.ops.link(tmp, sentinel.marker_path(spool.root))
    except FileExistsError:
        pass  # another init won the race; its marker stands
    finally:
        with contextlib.suppress(OSError):
            spool.ops.unlink_quiet(tmp)
    with contextlib.suppress(OSError):  # readable by producers, whatever the umask
        os.chmod(sentinel.marker_path(spool.root), 0o644)
    spool.sync_dir(spool.root)
    return sentinel.check(spool.root)


def is_fresh_project_spool(spool_dir: Path, config_file: Path | None) -> bool:
    """May ``jobspool up`` initialise spool_dir itself?

    Only when nothing is there at all and it lies inside the project: the
    directory holding the allowed_jobs.yaml in use. A mount point always
    exists as a directory, so an unmounted one is never taken for a fresh
    spool; without a config file there is no project to speak of.
    """
    if config_file is None or os.path.lexists(spool_dir):
        return False
    return spool_dir.resolve().is_relative_to(config_file.resolve().parent)


def init_fresh_project_spool(spool_dir: Path, config_file: Path | None, **options: Any) -> bool:
    """Initialise spool_dir when :func:`is_fresh_project_spool` allows it
    (``jobspool up``, and a runner started on an explicit ``--config``);
    True if it did. Anything else must already carry its marker."""
    if not is_fresh_project_spool(spool_dir, config_file):
        return False
    init_spool(spool_dir, **options)
    return True
