"""Directory listings of the spool, cached by the directory's modification time.

Owns the answer to "which job files are in this status directory right now",
at a cost that does not grow with every request: listing 100,000 entries
takes a few hundred milliseconds on a slow disk, a ``stat`` of the directory
takes microseconds. A directory's mtime changes whenever an entry is added,
removed or renamed, so an unchanged mtime means an unchanged listing.

Invariants:
* Names come from :meth:`jobspool.spool.Spool.names`, so what counts as a job
  file is decided by the engine alone. For statuses whose files can be
  replaced under the same name (a failed job retried and failed again), each
  name also carries a file identity (inode, size, mtime and ctime hashed
  together: inode numbers alone are reused at once on ext4), so a replaced
  file is seen as new.
* Racy timestamps: a listing taken within ``racy_seconds`` of the directory's
  mtime is not trusted (a second change in the same clock tick would leave the
  mtime unchanged), so such a directory is listed again on the next poll.
  Coarse clocks (FAT, some network filesystems) are covered by the 2 s default.
* A listing is never older than ``max_age`` seconds, whatever the mtime says.
* Large directories are listed at most every ``cost_factor`` times their last
  listing's duration, so a huge, busy directory cannot eat a whole core.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from jobspool.spool import Spool
from jobspool.states import Status

Entries = dict[str, int]


@dataclass(frozen=True)
class Listed:
    """When and how a directory was last listed (the entries go to the caller)."""

    mtime_ns: int
    listed_at: float  # wall clock, comparable with the directory's mtime
    cost: float  # seconds the listing took


class DirWatch:
    """The cached listing of one status directory."""

    def __init__(
        self,
        spool: Spool,
        status: Status,
        *,
        track_identity: bool,
        racy_seconds: float = 2.0,
        max_age: float = 30.0,
        cost_factor: float = 10.0,
    ) -> None:
        self.spool = spool
        self.status = status
        self.track_identity = track_identity
        self.racy_seconds = racy_seconds
        self.max_age = max_age
        self.cost_factor = cost_factor
        self.last: Listed | None = None

    def _mtime_ns(self) -> int:
        try:
            return os.stat(self.spool.dir(self.status)).st_mtime_ns
        except FileNotFoundError:
            return -1

    def _list(self) -> Entries:
        names = self.spool.names(self.status)
        if not self.track_identity:
            return dict.fromkeys(names, 0)
        # The engine lists names only; the identity tells a replaced file from
        # the one we read before. One lstat per name, only for these smaller dirs.
        out: Entries = {}
        base = self.spool.dir(self.status)
        for name in names:
            try:
                st = os.lstat(base / name)
            except FileNotFoundError:
                continue
            out[name] = hash((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return out

    def poll(self, *, force: bool = False) -> Entries | None:
        """A fresh listing (name -> identity) if the directory may have changed, else None.

        The watch keeps no entries itself, so the caller can keep the name
        strings it already holds instead of a second copy of every name.
        """
        now = time.time()
        last = self.last
        mtime = self._mtime_ns()
        if last is not None and not force:
            if now - last.listed_at < last.cost * self.cost_factor:
                return None
            unchanged = mtime == last.mtime_ns
            settled = last.listed_at - mtime / 1e9 > self.racy_seconds
            if unchanged and settled and now - last.listed_at < self.max_age:
                return None
        started = time.perf_counter()
        entries = self._list()
        cost = time.perf_counter() - started
        self.last = Listed(mtime_ns=mtime, listed_at=now, cost=cost)
        return entries
