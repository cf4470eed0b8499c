"""The purge lease: which one runner of a spool enforces retention.

Owns ``purge/.lease``, a small JSON file naming its holder's runner id. No
file lock is trusted (a spool may be shared by hosts over a network
filesystem): the lease is taken by linking a complete new file to that name,
which fails when the name exists, and it stays valid for as long as its
holder's heartbeat is live, as :class:`jobspool.leases.Liveness` judges on
the observer's own monotonic clock (a holder whose heartbeat file is gone
altogether has stopped or was recovered as dead). Only a holder judged dead
is replaced:
its file is renamed aside (one rename wins), checked to be the very file
that named the dead runner, and only then is a new one linked in. A file
that is not a readable lease is judged like a holder with no heartbeat: it
is replaced once it has stayed unchanged for the lease time.

Invariants: a runner purges only while the file names it (looked at before
each batch); a live holder is never replaced; what is read is capped, read
without following a link, and validated; a runner that stops releases the
lease only if it still names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets

from jobspool import heartbeats, purge
from jobspool.errors import InvalidJobFile
from jobspool.fsops import NotRegularFile
from jobspool.leases import Liveness
from jobspool.model import utcnow
from jobspool.names import hostname
from jobspool.spool import Spool

LEASE = ".lease"
MAX_BYTES = 4096
MAX_ID = 200
Holder = str | None  # a runner id; None: no lease, or one that cannot be read


def encode(runner: str) -> bytes:
    body = {"runner": runner, "host": hostname(), "at": utcnow().isoformat()}
    return json.dumps(body).encode()


def decode(data: bytes) -> Holder:
    """The holder a lease file names, or None if it is not a lease."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    runner = body.get("runner") if isinstance(body, dict) else None
    if not isinstance(runner, str) or not 0 < len(runner) <= MAX_ID or not runner.isprintable():
        return None
    return runner


class PurgeLease:
    def __init__(self, spool: Spool, lease_seconds: float) -> None:
        self.spool = spool
        self.lease_seconds = lease_seconds
        self.path = os.path.join(purge.area(spool), LEASE)
        self._judges: dict[str, Liveness] = {}
        self._odd: tuple[tuple[int, int, int], float] | None = None  # an unreadable lease

    def holder(self) -> tuple[bool, Holder]:
        """(whether a lease file exists, the runner it names)."""
        try:
            data = self.spool.ops.read_regular_stat(self.path, MAX_BYTES)[0]
        except FileNotFoundError:
            return False, None
        except (OSError, NotRegularFile, InvalidJobFile):
            return True, None
        return True, decode(data) if len(data) <= MAX_BYTES else None

    def held_by(self, me: str) -> bool:
        return self.holder() == (True, me)

    def acquire(self, me: str, now: float) -> bool:
        """True if ``me`` holds the lease now (taken, or taken over from a dead holder)."""
        exists, holder = self.holder()
        if holder == me:
            return True
        if not exists:
            return self._create(me)
        if holder is None:
            return self._odd_lapsed(now) and self._take_over(me, None)
        if self._unregistered(holder):
            return self._take_over(me, holder)
        judge = self._judges.setdefault(me, Liveness(self.spool, me, self.lease_seconds))
        judge.lease = self.lease_seconds
        if holder in judge.dead(now, {holder}):
            return self._take_over(me, holder)
        return False

    def _unregistered(self, runner: str) -> bool:
        """No heartbeat file at all: the holder stopped, or another runner
        judged it dead and recovered it (a live runner's heartbeat is
        replaced by rename, so its name is never missing; a runner writes
        its first one before it can take this lease)."""
        found = heartbeats.scan(self.spool)
        return runner not in found.beats and runner not in found.malformed

    def release(self, me: str) -> None:
        """Give the lease up if it names me; never raises."""
        try:
            if self.held_by(me):
                self.spool.ops.unlink_quiet(self.path)
        except OSError:
            pass

    def _create(self, me: str) -> bool:
        tmp = self.spool.write_tmp(encode(me), "purge-lease")
        try:
            self.spool.ops.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            self.spool.ops.unlink_quiet(tmp)
        self.spool.sync_dir(os.path.dirname(self.path))
        return True

    def _odd_lapsed(self, now: float) -> bool:
        """Has the unreadable file at the lease's name stayed the same for the lease time?"""
        try:
            st = os.lstat(self.path)
        except OSError:
            return False
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._odd is None or self._odd[0] != stamp:
            self._odd = (stamp, now)
        return now - self._odd[1] >= self.lease_seconds

    def _take_over(self, me: str, dead: Holder) -> bool:
        """Rename the dead holder's file aside (one rename wins); put it back if
        it turns out to be another, newer lease; then create ours."""
        aside = os.path.join(os.path.dirname(self.path), f".lease.{secrets.token_hex(6)}.old")
        try:
            self.spool.ops.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            data = self.spool.ops.read_regular_stat(aside, MAX_BYTES)[0]
            found = decode(data)
        except (OSError, NotRegularFile):
            found = None
        if found != dead and found is not None:
            # Someone took it over between our look and our rename: give it back.
            with contextlib.suppress(FileExistsError):
                self.spool.ops.link(aside, self.path)
            self.spool.ops.unlink_quiet(aside)
            return False
        if os.path.isdir(aside) and not os.path.islink(aside):
            self.spool.quarantine(aside, "found in place of the purge lease")
        else:
            self.spool.ops.unlink_quiet(aside)
        self._odd = None
        return self._create(me)
