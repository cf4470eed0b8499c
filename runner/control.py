"""Requests to runners: the files in control/.

Owns the messages a person leaves for the runners: a request about a job
(``cancel`` a running job) or about a job name (``pause`` it; the name
``__all__`` pauses the whole spool, see :mod:`jobspool.pauses`), stored as
``control/<kind>~<id or name>.json``: its schema (:class:`Request`), its encoder
and its strict decoder, making, reading and clearing requests, and the
quarantine of what is found there but is not a request.

Invariants kept here:

* Requests are published like job files (written to tmp/, linked into
  place, the directory synced: invariant 2), so a request is whole or
  absent and survives a power loss once made. Making one is idempotent:
  the link never replaces an existing request (invariant 4), and the first
  request made stands. Clearing a request that is gone is not an error.
* What :func:`request` writes, :func:`decode` accepts: text given as who
  and from where is made printable (escaped) and cut to :data:`MAX_TEXT`
  on the way in, so the dashboard's and the CLI's requests always decode.
* :func:`decode` is strict and bounded: a size cap, strict JSON, exactly
  the known fields, a known kind, bounded printable strings, an ISO time
  with a time zone, and the kind and job of the file's own name. Only the
  values it returns reach a job's history.
* control/ belongs to the runner's user (producers write only tmp/ and
  pending/): a request is honoured only when its file is a regular file
  owned by this process's user or by root. Reading opens without following
  links and without blocking, and never raises for what it finds.
* Anything there that is not an honoured request (malformed, foreign,
  a directory, a FIFO, a link) goes to corrupt/ byte for byte with its
  reason, never deleted; :class:`Reader` logs each such file once, and
  one that cannot be moved away stays unread and unobeyed. Dot files
  (a network filesystem's ``.nfs*``) and names not ending in ``.json``
  are not requests (yet) and are left alone.

Every change goes through ``spool.ops`` (invariant 10).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jobspool import codec, logs
from jobspool.claimgate import ALL
from jobspool.errors import InvalidJobFile, JobspoolError
from jobspool.fsops import NotRegularFile
from jobspool.model import NAME_PATTERN, aware_time, is_valid_id, utcnow
from jobspool.names import JSON, RUN_SEP
from jobspool.shown import printable
from jobspool.spool import Spool

CANCEL = "cancel"
PAUSE = "pause"  # about a job name (or claimgate.ALL), not a job id
KINDS = frozenset({CANCEL, PAUSE})
MAX_BYTES = 4096
MAX_TEXT = 255
MAX_TIME_TEXT = 64
_FIELDS = frozenset({"kind", "job", "at", "by", "via"})
# Who may have made a request: this process's user, or root. None where the
# OS has no user ids (Windows): there the directory's ACL is the only guard.
_OWNERS = frozenset({os.geteuid(), 0}) if hasattr(os, "geteuid") else None

FileStamp = tuple[int, int, int]


class MalformedRequest(JobspoolError):
    """A file in control/ that is not a request a runner may honour."""


@dataclass(frozen=True)
class Request:
    """One request about one job, as made by a person (CLI, dashboard)."""

    kind: str
    job: str
    at: datetime
    by: str | None
    via: str | None

    @property
    def name(self) -> str:
        return f"{self.kind}{RUN_SEP}{self.job}{JSON}"

    def info(self) -> dict[str, str | None]:
        """Who made it and from where: what a job's history records."""
        return {"by": self.by, "via": self.via}


# ------------------------------------------------------------------ encoding


def clean_text(text: str | None) -> str | None:
    """Text a request can carry: unprintable characters escaped, cut to MAX_TEXT."""
    if text is None:
        return None
    return printable(text[: MAX_TEXT + 1])[:MAX_TEXT]


def encode(req: Request) -> bytes:
    return codec.json_bytes(
        {
            "kind": req.kind,
            "job": req.job,
            "at": req.at.isoformat(),
            "by": clean_text(req.by),
            "via": clean_text(req.via),
        }
    )


# ------------------------------------------------------------------ decoding


def parse_name(name: str) -> tuple[str, str] | None:
    """(kind, job id) of a request's file name; None if it names no request."""
    if not name.endswith(JSON) or name.startswith("."):
        return None
    kind, sep, job_id = name[: -len(JSON)].partition(RUN_SEP)
    if not sep or kind not in KINDS or not _valid_subject(kind, job_id):
        return None
    return kind, job_id


def _valid_subject(kind: str, subject: str) -> bool:
    """A cancel names a job id; a pause a job name (allow-list pattern) or ALL."""
    if kind == PAUSE:
        return subject == ALL or (
            NAME_PATTERN.fullmatch(subject) is not None and not subject.startswith("__")
        )
    return is_valid_id(subject)


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise MalformedRequest(f"{what} is not a string")
    if len(value) > limit:
        raise MalformedRequest(f"{what} is longer than {limit} characters")
    if not value.isprintable():
        raise MalformedRequest(f"{what} holds a character that is not printable")
    return value


def _optional_text(value: object, what: str) -> str | None:
    return None if value is None else _text(value, what, MAX_TEXT)


def _time(value: object, what: str) -> datetime:
    try:
        return aware_time(_text(value, what, MAX_TIME_TEXT))
    except ValueError as exc:
        raise MalformedRequest(f"{what} {exc}") from None


def decode(data: bytes, kind: str, job_id: str) -> Request:
    """The request in a file named for kind and job_id, or MalformedRequest saying why not."""
    if len(data) > MAX_BYTES:
        raise MalformedRequest(f"larger than the {MAX_BYTES}-byte cap")
    try:
        body = codec.parse_json(data)
    except InvalidJobFile as exc:
        raise MalformedRequest(str(exc)) from None
    if not isinstance(body, dict):
        raise MalformedRequest("request is not a JSON object")
    missing = _FIELDS - body.keys()
    if missing:
        raise MalformedRequest(f"request lacks {', '.join(sorted(missing))}")
    if len(body) != len(_FIELDS):
        extra = sorted(body.keys() - _FIELDS)[0]
        raise MalformedRequest(f"request has an unknown field {extra[:40]!r}")
    if _text(body["kind"], "kind", MAX_TEXT) != kind:
        raise MalformedRequest("kind does not match the file name")
    if _text(body["job"], "job", MAX_TEXT) != job_id:
        raise MalformedRequest("job does not match the file name")
    return Request(
        kind=kind,
        job=job_id,
        at=_time(body["at"], "at"),
        by=_optional_text(body["by"], "by"),
        via=_optional_text(body["via"], "via"),
    )


# ------------------------------------------------------------------ the files


def _request_path(spool: Spool, kind: str, job_id: str) -> Path:
    return spool.dir("control") / f"{kind}{RUN_SEP}{job_id}{JSON}"


def request(
    spool: Spool, kind: str, job_id: str, *, by: str | None = None, via: str | None = None
) -> None:
    """Leave a durable request for runners (idempotent)."""
    req = Request(kind=kind, job=job_id, at=utcnow(), by=by, via=via)
    tmp = spool.write_tmp(encode(req), kind)
    try:
        spool.ops.link(tmp, _request_path(spool, kind, job_id))
    except FileExistsError:
        pass
    finally:
        spool.ops.unlink_quiet(tmp)
    spool.sync_dir(spool.dir("control"))


def clear_request(spool: Spool, kind: str, job_id: str) -> None:
    spool.ops.unlink_quiet(_request_path(spool, kind, job_id))


def _owner_problem(st: os.stat_result) -> str | None:
    if _OWNERS is None or st.st_uid in _OWNERS:
        return None
    return f"owned by uid {st.st_uid}, not by the runner's user or root"


def _load(spool: Spool, path: Path) -> bytes | str | None:
    """The bytes of a request file of ours, the reason it is not one, or None if gone."""
    try:
        data, st = spool.ops.read_regular_stat(path, MAX_BYTES)
    except FileNotFoundError:
        return None  # honoured and cleared, or moved by another runner, meanwhile
    except NotRegularFile:
        return "not a regular file"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return _owner_problem(st) or data


def read(spool: Spool, path: Path) -> Request | str | None:
    """The request at path, the reason it is not one to honour, or None if it is gone."""
    parsed = parse_name(path.name)
    if parsed is None:
        return "not a control request (no known kind~job id name)"
    data = _load(spool, path)
    if not isinstance(data, bytes):
        return data
    try:
        return decode(data, *parsed)
    except MalformedRequest as exc:
        return str(exc)


@dataclass(frozen=True)
class Scan:
    """What control/ holds: the requests to honour, and what is not one (name: reason)."""

    requests: tuple[Request, ...]
    refused: dict[str, str]


def scan(spool: Spool) -> Scan:
    """Every request in control/, and every file there that is not one. Never raises."""
    folder = spool.dir("control")
    try:
        names = spool.ops.scandir_names(folder)
    except OSError:
        names = []
    found: list[Request] = []
    refused: dict[str, str] = {}
    for name in names:
        if not name.endswith(JSON) or name.startswith("."):
            continue
        result = read(spool, folder / name)
        if isinstance(result, Request):
            found.append(result)
        elif result is not None:
            refused[name] = result
    return Scan(tuple(found), refused)


def requests(spool: Spool, kind: str) -> dict[str, Request]:
    """The requests of one kind to honour, by job id (reading only: nothing is moved)."""
    return {req.job: req for req in scan(spool).requests if req.kind == kind}


def _stamp(path: Path) -> FileStamp | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Reader:
    """A runner's view of control/: requests to honour; the rest quarantined, logged once."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        # Refused files that could not be moved away, as last seen: not logged again.
        self._stuck: dict[str, FileStamp | None] = {}

    def requests(self, kind: str) -> dict[str, Request]:
        """The requests of one kind to honour now, by job id."""
        found = scan(self.spool)
        for name in set(self._stuck) - found.refused.keys():
            del self._stuck[name]
        for name, reason in sorted(found.refused.items()):
            self._refuse(name, reason)
        return {req.job: req for req in found.requests if req.kind == kind}

    def _refuse(self, name: str, reason: str) -> None:
        path = self.spool.dir("control") / name
        try:
            dst = self.spool.quarantine(path, reason)
        except FileNotFoundError:
            return  # another runner moved it first, and said so
        except OSError as exc:
            stamp = _stamp(path)
            if name in self._stuck and self._stuck[name] == stamp:
                return  # said already; tried again at every look, quietly
            self._stuck[name] = stamp
            logs.event("control_refused", logs.ERROR, file=name, reason=reason, error=exc)
            return
        self._stuck.pop(name, None)
        logs.event("control_refused", logs.WARNING, file=name, reason=reason, moved_to=dst.name)
