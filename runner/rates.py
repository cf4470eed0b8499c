"""Rate limits across runners: one token file per claim in fixed windows.

A job name with ``rate: N/m`` (or /s, /h) may be claimed at most N times
per window, spool-wide. Windows are aligned to the epoch
(:func:`jobspool.claimgate.window_start`): a claim at wall time t counts in
``rate/<JobName>/<window start>/``, and takes the lowest free number k < N
there by a no-replace link (:mod:`jobspool.tokens`); with none free, the
name is not claimed until the next window opens. Tokens are never given
back once their claim stands (a started attempt counts, whatever its
outcome); a claim lost to another runner gives its token back.

Why fixed windows of files rather than a token bucket: a bucket is one
shared value that every claim rewrites, so runners on several hosts would
need a lock (or a compare-and-swap the spool does not have) to avoid lost
updates; a window's numbered files need only the no-replace link every
runner already relies on, cost one file per claim, and a window's count is
a directory listing. The price is the fixed window's edge: N claims at the
end of one window and N at the start of the next, so up to 2N in some
period-long stretch.

Clock skew: each host reckons windows by its own wall clock. Between hosts
whose clocks differ by d, one real period can touch 1 + ceil(d / period)
windows, so at worst N * (2 + ceil(d / period)) claims start in any
real period-long stretch (2N with no skew); every window, as the files
count it, still holds at most N. Windows are removed (by any runner's
sweep) once they ended more than a period plus :data:`KEEP_SECONDS` ago,
so a host whose clock is further behind than that may refill a removed
window: one more N at worst for each such window.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from jobspool import tokens
from jobspool.claimgate import Rate, free_slots, window_start
from jobspool.spool import Spool

RATE = "rate"
KEEP_SECONDS = 300  # past windows kept beyond one period, for hosts whose clocks lag


def take(
    spool: Spool, name: str, rate: Rate, wall: float, holder: tokens.Holder
) -> tokens.Taken | None:
    """A token of the window ``wall`` falls in; None when the window is spent."""
    where = tokens.folder(spool, RATE, name, str(window_start(wall, rate.period)))
    used = tokens.numbers(spool.ops.scandir_names(where))
    return tokens.take(spool, where, free_slots(used, rate.limit), holder)


def used(spool: Spool, name: str, rate: Rate, wall: float) -> int:
    """Claims counted in the current window (reading only)."""
    where = spool.root / RATE / name / str(window_start(wall, rate.period))
    try:
        if not stat.S_ISDIR(os.lstat(where).st_mode):
            return 0
        return len(tokens.numbers(spool.ops.scandir_names(where)))
    except OSError:
        return 0


def prune(spool: Spool, name: str, rate: Rate, wall: float) -> int:
    """Remove the windows of ``name`` that ended long enough ago; how many."""
    oldest = window_start(wall, rate.period) - rate.period - KEEP_SECONDS
    folder = spool.root / RATE / name
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return 0
        names = spool.ops.scandir_names(folder)
    except OSError:
        return 0
    removed = 0
    for window in names:
        if window.isdigit() and len(window) <= 12 and int(window) < oldest:
            removed += _remove_window(folder / window)
    return removed


def _remove_window(path: Path) -> int:
    """Empty and remove one window folder, never through a link."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return 0  # a link or a file planted there: left alone
    try:
        for entry in os.listdir(fd):
            with contextlib.suppress(OSError):
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except OSError:
        return 0
    return 1
