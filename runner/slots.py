"""Spool-wide concurrency: leased slot files, one per attempt in flight.

A job name with ``concurrency: {global: N}`` has N slots,
``slots/<JobName>/<n>`` for n in 0..N-1. A runner takes the lowest free
one (a no-replace link, :mod:`jobspool.tokens`) before it claims a job of
that name, writing its runner id, the job id and the attempt's claim token
into it; without a free slot it does not claim. The slot is given back when
the attempt's record is published (or the claim is lost), by the holder,
only while the name still holds its own file.

A slot is freed by someone else only when its holder is dead, as
:mod:`jobspool.leases` judges runners (the liveness stage lists slot
holders beside the owners of running files, and frees a dead runner's slots
after taking over its claims): a slot whose holder is alive is never taken.
A slot of a live holder whose job is no longer in running/ under that
holder's claim (it crashed between publishing and giving back, or a give
back failed on I/O) is repaired by the holder itself at its next sweep
(:func:`stale_of`). A slot file that is not a valid token (garbage, a link,
a directory) is reported and moved to corrupt/, never believed.

Invariant: at every instant at most N attempts of the name are between
claim and publication across all runners, except for a dead runner's
attempts on another host, which may outlive it unseen (as for any recovery).
Lowering N leaves slots numbered N and above to drain: they are counted
but never taken again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from jobspool import tokens
from jobspool.claimgate import free_slots
from jobspool.model import NAME_PATTERN
from jobspool.spool import Spool

SLOTS = "slots"


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    path: Path
    holder: tokens.Holder
    ino: int


@dataclass(frozen=True)
class Scan:
    """Every valid slot file, and every file there that is not one (path: reason)."""

    slots: list[Slot]
    refused: dict[Path, str]

    def in_use(self, name: str) -> int:
        return sum(1 for s in self.slots if s.name == name)

    def holders(self) -> set[str]:
        return {s.holder.runner for s in self.slots}


def take(spool: Spool, name: str, cap: int, holder: tokens.Holder) -> tokens.Taken | None:
    """One of ``name``'s ``cap`` slots for ``holder``; None when all are taken."""
    where = tokens.folder(spool, SLOTS, name)
    taken = tokens.numbers(spool.ops.scandir_names(where))
    return tokens.take(spool, where, free_slots(taken, cap), holder)


def scan(spool: Spool) -> Scan:
    """Read slots/ (never raises for what it finds)."""
    found: list[Slot] = []
    refused: dict[Path, str] = {}
    root = spool.root / SLOTS
    try:
        names = spool.ops.scandir_names(root)
    except OSError:
        return Scan([], {})
    for name in sorted(names):
        if name.startswith("."):
            continue
        if NAME_PATTERN.fullmatch(name) is None:
            refused[root / name] = "not a job name"
            continue
        try:
            where = tokens.folder(spool, SLOTS, name)
            entries = spool.ops.scandir_names(where)
        except OSError as exc:
            refused[root / name] = f"not a folder of slots: {exc.strerror or exc}"
            continue
        for entry in sorted(entries):
            if entry.startswith("."):
                continue
            _read_one(spool, name, where / entry, found, refused)
    return Scan(found, refused)


def _read_one(
    spool: Spool, name: str, path: Path, found: list[Slot], refused: dict[Path, str]
) -> None:
    if not tokens.numbers([path.name]):
        refused[path] = "not a slot number"
        return
    result = tokens.read(spool, path)
    if isinstance(result, str):
        refused[path] = result
    elif result is not None:
        found.append(Slot(name, path, result[0], result[1]))


def free_dead(spool: Spool, found: Scan, runner: str) -> int:
    """Free the slots of a runner judged dead; how many were freed."""
    return sum(
        tokens.remove_if(spool, s.path, s.ino, s.holder)
        for s in found.slots
        if s.holder.runner == runner
    )


def stale_of(found: Scan, runner: str, running: Collection[str]) -> list[Slot]:
    """A live runner's own slots whose claim token is not among its claims in running/."""
    return [s for s in found.slots if s.holder.runner == runner and s.holder.token not in running]
