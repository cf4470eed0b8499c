"""Pausing job names, or the whole spool: the spool side.

Owns what a pause is on disk and how a person makes and lifts one. A pause
is a control request (:mod:`jobspool.control`) of kind ``pause``, one file
per name: ``control/pause~<JobName>.json``, and
``control/pause~__all__.json`` for the whole spool. Why files per name and
not one shared file: two people pausing two names at once each create
their own file, so neither update can be lost, and no lock is needed;
making one is a no-replace link (the first pause stands, with who made it
and when), lifting one is an unlink. The watcher already watches control/,
so runners see a change at once on a local disk, and at their next rescan
(within ``poll_seconds``) on a network filesystem.

Invariants: a pause only ever holds jobs in pending/ (a runner skips them
when it claims; running attempts finish); the names a person gives are
checked against the allow-list (unknown: :class:`NotAllowed` with a "did
you mean"), while what is read back from control/ is checked by
:func:`jobspool.control.decode` alone (a pause file for a name since
removed from the allow-list still holds, and is shown). Files there that
are not valid pauses are reported (``refused``) and never obeyed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jobspool import control
from jobspool.claimgate import ALL
from jobspool.config import Config, did_you_mean
from jobspool.errors import NotAllowed
from jobspool.spool import Spool


@dataclass(frozen=True)
class Pauses:
    """What control/ says is paused: by name (ALL for the spool), and the refused files."""

    by_name: dict[str, control.Request]
    refused: dict[str, str]

    @property
    def spool_paused(self) -> bool:
        return ALL in self.by_name

    @property
    def names(self) -> list[str]:
        return sorted(n for n in self.by_name if n != ALL)

    def to_json(self) -> dict[str, object]:
        def one(req: control.Request) -> dict[str, str | None]:
            return {"at": req.at.isoformat(), "by": req.by, "via": req.via}

        spool = self.by_name.get(ALL)
        return {
            "spool": one(spool) if spool is not None else None,
            "jobs": {n: one(self.by_name[n]) for n in self.names},
            "refused": dict(sorted(self.refused.items())),
        }


def check_names(config: Config, names: Sequence[str]) -> list[str]:
    """The names, each in the allow-list; NotAllowed (with a hint) for the first that is not."""
    known = list(config.settings.allowed_jobs)
    for name in names:
        if name not in config.settings.allowed_jobs:
            hint = did_you_mean(name, known)
            raise NotAllowed(f"job {name!r} is not in the allow-list{hint}")
    return list(dict.fromkeys(names))


def pause(spool: Spool, names: Sequence[str], *, by: str | None, via: str | None) -> None:
    """Pause these names (already checked), or the whole spool when there are none."""
    for name in names or [ALL]:
        control.request(spool, control.PAUSE, name, by=by, via=via)


def resume(spool: Spool, names: Sequence[str]) -> None:
    """Lift the pauses of these names, or the whole spool's when there are none.

    Resuming the spool lifts its own pause only: names paused one by one
    stay paused. Lifting a pause that is not there is not an error."""
    for name in names or [ALL]:
        control.clear_request(spool, control.PAUSE, name)
    spool.sync_dir(spool.dir("control"))


def current(spool: Spool) -> Pauses:
    """What is paused now, read from control/ (reading only, never raises)."""
    found = control.scan(spool)
    refused = {n: r for n, r in found.refused.items() if n.startswith(control.PAUSE)}
    by_name = {r.job: r for r in found.requests if r.kind == control.PAUSE}
    return Pauses(by_name, refused)
