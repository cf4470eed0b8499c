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
  never deleted (invariant 5);
* a copy in pending/ is judged first (:func:`standing`, the rule the
  intake applies too), since producers write there (invariant 12): it is
  the job's newest state only when it carries the runner's seal and a
  revision above every other copy's. Otherwise it is either a leftover of
  an earlier state (an older sealed copy, or the source of a claim or a
  cancel cut short: its bytes are another copy's, or it is no newer than
  them), which always loses, or a producer's new file under an id in use,
  which is no copy at all: the intake requeues it under a fresh id and it
  is left alone here. An unsealed file's revision, a number its writer
  chose, never ranks it.

Only what is older than a caller-given age is touched, so a transition in
flight right now is never mistaken for a leftover. Every file operation goes
through ``spool.ops`` (invariant 10).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from jobspool.errors import InvalidJobFile
from jobspool.fsops import StrPath
from jobspool.names import job_id_of
from jobspool.spool import Loaded, Spool
from jobspool.states import PRECEDENCE, TERMINAL, Status

LOOK_AGAIN = 3  # a claim renamed while we look (a finish) is looked for again


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


class Standing(StrEnum):
    """What a file in pending/ is, next to the other copies of its id."""

    ALONE = "alone"  # no other directory holds the id
    NEWER = "newer"  # the runner's sealed copy, newer than all others
    IN_FLIGHT = "in_flight"  # newer, but a terminal copy is still there
    STALE = "stale"  # a leftover (or a replay) of a copy there is
    TAKEN = "taken"  # a new file under an id in use: no copy at all


@dataclass(frozen=True)
class Copy:
    """One copy of an id outside pending/ (or the pending one), as read."""

    status: Status
    path: Path
    loaded: Loaded | None  # None: not readable as a job
    mtime: float

    @property
    def revision(self) -> float:
        return self.loaded.job.revision if self.loaded is not None else math.inf


def read_copy(spool: Spool, status: Status, path: StrPath) -> Copy | None:
    """The copy at path; None if it is gone."""
    try:
        mtime = os.lstat(path).st_mtime
        loaded: Loaded | None = spool.load(path)
    except FileNotFoundError:
        return None
    except (OSError, InvalidJobFile):
        loaded = None
    return Copy(status, Path(path), loaded, mtime)


def terminal_copies(spool: Spool, job_id: str) -> list[Copy]:
    """The copies of job_id in the terminal directories."""
    found = []
    for status in sorted(TERMINAL):
        path = spool.path_in(status, f"{job_id}.json")
        if os.path.lexists(path) and (copy := read_copy(spool, status, path)) is not None:
            found.append(copy)
    return found


def other_copies(spool: Spool, job_id: str) -> list[Copy]:
    """Every copy of job_id outside pending/: terminal ones, then claims."""
    found: list[Copy] = []
    for _ in range(LOOK_AGAIN):
        found, vanished = terminal_copies(spool, job_id), False
        for name in spool.names(Status.RUNNING):
            if job_id_of(Status.RUNNING, name) == job_id:
                copy = read_copy(spool, Status.RUNNING, spool.path_in(Status.RUNNING, name))
                vanished |= copy is None
                if copy is not None:
                    found.append(copy)
        if not vanished:
            break
    return found


def standing(pending: Loaded, others: list[Copy]) -> Standing:
    """The one rule for a file in pending/ whose id other directories hold.

    A move into pending/ (a retry, a hand-back, a person's retry) writes a
    sealed record one revision above its source, so only a sealed, newer
    copy is the job's newest state; while a terminal copy is still there
    it is a person's retry in its instant, or cut short (the terminal copy
    wins); an older sealed copy is a leftover, or a replay, of an earlier
    state. A move out of pending/ (a claim, a cancel) leaves its unsealed
    source behind if cut short: that file has the bytes of a copy, or was
    there before the copies were written. Anything else is a new submission
    that repeats an id in use.
    """
    if not others:
        return Standing.ALONE
    if pending.sealed:  # a record of this very job: its newest state, or an old one
        if pending.job.revision <= max(c.revision for c in others):
            return Standing.STALE
        return Standing.IN_FLIGHT if any(c.status in TERMINAL for c in others) else Standing.NEWER
    same = any(c.loaded is not None and c.loaded.data == pending.data for c in others)
    if same or pending.mtime <= max(c.mtime for c in others):
        return Standing.STALE
    return Standing.TAKEN


def _copies(spool: Spool) -> dict[str, list[tuple[Status, str]]]:
    """Each id's (status, file name) pairs. Names, not paths: a spool of
    100,000 jobs would spend most of this in building paths it never uses."""
    copies: dict[str, list[tuple[Status, str]]] = {}
    for status in Status:
        for name in spool.names(status):
            copies.setdefault(job_id_of(status, name), []).append((status, name))
    return copies


def _ranked(copies: list[Copy]) -> list[Copy]:
    """The copies of one id, the one to keep first; [] when there is nothing
    to settle (a pending file that is no copy is left to the intake)."""
    pending = next((c for c in copies if c.status is Status.PENDING), None)
    others = [c for c in copies if c.status is not Status.PENDING]
    trusted = True
    if pending is not None and pending.loaded is not None:
        judged = standing(pending.loaded, others)
        if judged is Standing.TAKEN:
            copies = others
        trusted = judged is not Standing.STALE
    readable = [c for c in copies if c.loaded is not None]

    def rank(c: Copy) -> tuple[bool, bool, float, int, float]:
        own = trusted or c.status is not Status.PENDING
        return (own, c.status in TERMINAL, c.revision, PRECEDENCE[c.status], c.mtime)

    return sorted(readable, key=rank, reverse=True) if len(readable) > 1 else []


def terminal_copy(spool: Spool, job_id: str) -> str | None:
    """Where job_id's readable terminal record is (``completed/<id>.json``), if any.

    A dead runner's claim of a job that also has one is the claim its finish
    left behind after publishing (a crash before the unlink): the terminal
    copy wins (invariant 1), as :func:`resolve_duplicates` would rule."""
    readable = (c for c in terminal_copies(spool, job_id) if c.loaded is not None)
    return next((f"{c.status}/{c.path.name}" for c in readable), None)


def resolve_duplicates(spool: Spool, min_age: float, now: float | None = None) -> list[str]:
    """One id in two directories (an interrupted move): keep one copy.

    A stale pending copy loses (see :func:`standing`); then a terminal copy
    wins, then the higher revision, then the state furthest along. Only
    copies whose newest is older than min_age are touched, so a move that
    is in flight right now is left alone.
    """
    limit = (time.time() if now is None else now) - min_age
    notes = []
    for job_id, paths in _copies(spool).items():
        if len(paths) < 2:
            continue
        found = ((s, spool.dir(s) / name) for s, name in paths)
        copies = [c for s, p in found if (c := read_copy(spool, s, p)) is not None]
        ranked = _ranked(copies)
        if not ranked or max(c.mtime for c in ranked) > limit:
            continue
        winner = ranked[0]
        for loser in ranked[1:]:
            reason = f"duplicate of {winner.status}/{winner.path.name} (interrupted move)"
            spool.quarantine(loser.path, reason)
            notes.append(f"{job_id}: dropped {loser.status} copy, kept {winner.status}")
    return notes
