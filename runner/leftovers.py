"""Leftovers of interrupted work: the one rule that settles them.

Owns what a crash can leave behind in a spool, and the one deterministic
rule for each (the invariants are numbered in :mod:`jobspool.spool`):

* a tmp/ file is never published from here (invariant 2): a write that was
  never published is removed after an age limit; a tmp name whose file was
  published but whose unlink was cut off is removed sooner
  (:func:`clean_tmp`), or at once when the runner meets the published twin
  (:func:`tmp_twin`), so the job runs rather than being taken for a planted
  link (invariant 5);
* one id in two directories (a move cut off between link and unlink) is
  settled by :func:`resolve_duplicates`, which restores invariant 1: a
  terminal copy wins, then the higher revision (invariant 9), then the
  state furthest along; each losing copy goes to corrupt/ with a reason,
  never deleted (invariant 5).

Only what is older than a caller-given age is touched, so a transition in
flight right now is never mistaken for a leftover. Every file operation goes
through ``spool.ops`` (invariant 10).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from jobspool.errors import InvalidJobFile
from jobspool.fsops import StrPath
from jobspool.names import job_id_of
from jobspool.spool import Spool
from jobspool.states import PRECEDENCE, TERMINAL, Status


def clean_tmp(
    spool: Spool, max_age: float, now: float | None = None, *, linked_max_age: float = 60.0
) -> list[str]:
    """Remove leftovers from tmp/; nothing here is ever published from it.

    A tmp file with one name is a write that never got published: removed
    after max_age. A tmp file with a second name is the tmp name of a
    publish whose last step (unlink tmp) was cut off by a crash: the job
    already lives under its other name, so the extra name goes after
    linked_max_age (short, but longer than any move in flight).
    """
    current = time.time() if now is None else now
    removed = []
    for name in spool.ops.scandir_names(spool.dir("tmp")):
        path = spool.dir("tmp") / name
        try:
            st = path.lstat()
            limit = linked_max_age if st.st_nlink > 1 else max_age
            if st.st_mtime < current - limit:
                spool.ops.unlink(path)
                removed.append(name)
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed


def tmp_twin(spool: Spool, path: StrPath, min_age: float) -> str | None:
    """Is path's second name a leftover in tmp/? Remove it if old enough.

    A writer killed between publishing (link) and removing its tmp name
    leaves a job with two names; it must still run, not be taken for a
    link planted from outside the spool. Returns "removed", "young" (a
    publish may be in flight: look again later) or None (no twin here).
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    for name in spool.ops.scandir_names(spool.dir("tmp")):
        other = spool.path_in("tmp", name)
        try:
            twin = os.lstat(other)
        except OSError:
            continue
        if (twin.st_ino, twin.st_dev) != (st.st_ino, st.st_dev):
            continue
        if time.time() - twin.st_ctime < min_age:
            return "young"
        spool.ops.unlink_quiet(other)
        return "removed"
    return None


def _copies(spool: Spool) -> dict[str, list[tuple[Status, Path]]]:
    copies: dict[str, list[tuple[Status, Path]]] = {}
    for status in Status:
        for name in spool.names(status):
            job_id = job_id_of(status, name)
            copies.setdefault(job_id, []).append((status, spool.dir(status) / name))
    return copies


def resolve_duplicates(spool: Spool, min_age: float, now: float | None = None) -> list[str]:
    """One id in two directories (an interrupted move): keep one copy.

    A terminal copy wins, then the higher revision, then the state
    furthest along. Only pairs whose newest copy is older than min_age
    are touched, so a move that is in flight right now is left alone.
    """
    limit = (time.time() if now is None else now) - min_age
    notes = []
    for job_id, copies in _copies(spool).items():
        if len(copies) < 2:
            continue
        ranked = []
        for status, path in copies:
            try:
                job = spool.read_job(path)
                mtime = path.lstat().st_mtime
            except (OSError, InvalidJobFile):
                continue
            rank = (status in TERMINAL, job.revision, PRECEDENCE[status])
            ranked.append((rank, mtime, status, path))
        if len(ranked) < 2 or max(r[1] for r in ranked) > limit:
            continue
        ranked.sort(reverse=True)
        winner = ranked[0]
        for _rank, _mtime, status, path in ranked[1:]:
            reason = f"duplicate of {winner[2]}/{winner[3].name} (interrupted move)"
            spool.quarantine(path, reason)
            notes.append(f"{job_id}: dropped {status} copy, kept {winner[2]}")
    return notes
