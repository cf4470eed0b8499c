"""Names in the spool: job ids, file names, claim names and who is acting.

Owns every rule about what a name in the spool means, so that the protocol
(:mod:`jobspool.spool`), the runner, the dashboard and the tools read names
the same way:

* a job file is ``<id>.json``; a name starting with a dot or not ending in
  ``.json`` is not a job (yet), which is how producers write in place;
* a running file is ``<id>~<runner>~<attempt>.json``: the claim of
  invariant 3, and the fence of invariant 4 once its runner part carries
  the ``-finishing`` suffix;
* a claim name parses only if its id part is a valid id
  (:func:`jobspool.model.is_valid_id`, a full match) and its attempt part
  is digits; ids made here sort by submission time;
* names made here never hold a ``:`` (Windows) or a path separator: the
  host part of a runner id passes through :func:`safe_token`.

Nothing here touches the filesystem.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import socket
import time
from dataclasses import dataclass

from jobspool.ids import is_valid_id
from jobspool.states import Status

RUN_SEP = "~"
FINISHING = "-finishing"
JSON = ".json"


def is_job_name(name: str) -> bool:
    """Files starting with a dot or not ending in .json are not jobs (yet)."""
    return name.endswith(JSON) and not name.startswith(".") and len(name) > len(JSON)


def safe_token(text: str) -> str:
    """Reduce text to [A-Za-z0-9-] so it can sit inside a file name."""
    cleaned = "".join(c if c.isascii() and c.isalnum() else "-" for c in text)
    return cleaned.strip("-")[:40] or "x"


def new_id(now: float | None = None) -> str:
    """A unique id that sorts by submission time: 20261129-110705-123456-1a2b3c4d."""
    ts = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(ts))
    micros = int((ts % 1) * 1_000_000)
    return f"{stamp}-{micros:06d}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class RunningName:
    """The claim carried in a running file's name."""

    job_id: str
    runner: str
    attempt: int

    @property
    def filename(self) -> str:
        return f"{self.job_id}{RUN_SEP}{self.runner}{RUN_SEP}{self.attempt}{JSON}"

    def finishing(self) -> RunningName:
        """The name a runner gives its claim while it publishes the outcome.

        Renaming to it is the fence (invariant 4): it fails once another
        runner has taken the claim over. Left behind by a crash, it reads as
        the claim of a runner that never beats, so it is recovered after the
        lease.
        """
        return RunningName(self.job_id, f"{self.runner}{FINISHING}", self.attempt)

    @classmethod
    def parse(cls, name: str) -> RunningName | None:
        if not is_job_name(name):
            return None
        parts = name[: -len(JSON)].split(RUN_SEP)
        if len(parts) != 3 or not is_valid_id(parts[0]) or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]))


def job_id_of(status: Status, name: str) -> str:
    if status is Status.RUNNING:
        parsed = RunningName.parse(name)
        if parsed is not None:
            return parsed.job_id
    return name[: -len(JSON)] if name.endswith(JSON) else name


def short_name(name: str, limit: int = 180) -> str:
    """Fit a name (any bytes) so that suffixes like ".12.reason.txt" still fit."""
    raw = os.fsencode(name)
    if len(raw) <= limit:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return os.fsdecode(raw[: limit - 13]) + "-" + digest


def hostname() -> str:
    """This host's identity in runner ids and heartbeats.

    JOBSPOOL_HOST overrides it (containers that share a hostname, or tests
    that play several hosts on one machine). Runners on the same host judge
    each other by their locks; across hosts, only by heartbeats.
    """
    return safe_token(os.environ.get("JOBSPOOL_HOST") or socket.gethostname())


def default_actor() -> str:
    """``user@host`` of whoever runs this process, for history entries."""
    return _actor(os.environ.get("USER"), os.environ.get("USERNAME"))


@functools.cache
def _actor(user_env: str | None, username_env: str | None) -> str:
    # Asked once per process (and per value of the fallbacks): getlogin and
    # gethostname cost more than the rest of a submit's bookkeeping.
    try:
        user = os.getlogin()
    except OSError:
        user = user_env or username_env or "unknown"
    return f"{user}@{socket.gethostname()}"
