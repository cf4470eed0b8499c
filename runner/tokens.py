"""Numbered token files taken by a no-replace link: the mechanism under slots and rates.

Owns taking "the lowest free number below N" in a folder of the spool, and
giving one back. A token is a small JSON file (who holds it, for which
job) written whole to tmp/ and then linked to ``<folder>/<n>``: the link
fails with EEXIST when the number is taken, so of two runners (on any
hosts) racing for one number exactly one wins, with no lock. Over a
network filesystem a link can report EEXIST after it succeeded (the reply
to a retransmitted request): the file at the name is then our own tmp
file, which the inode shows, and the token is ours.

Invariants: a token file is whole or absent (invariant 2's tmp + fsync +
link, the folder synced when durable); a folder is used only when it is a
real directory (never through a link); a token is given back only while
the name still holds the very file we linked (same inode and same holder:
an inode number is reused once a file is gone), so giving back never
removes another holder's token; what is read from a token file is
bounded and validated, never trusted (:func:`read`), and a file that is
not a valid token is reported by the caller, never believed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobspool import codec
from jobspool.errors import InvalidJobFile
from jobspool.fsops import NotRegularFile
from jobspool.model import is_valid_id
from jobspool.spool import Spool

MAX_BYTES = 1024
MAX_NUMBER = 100_000
_FIELDS = frozenset({"runner", "job", "token"})


@dataclass(frozen=True, slots=True)
class Holder:
    """What a valid token file says: which runner holds it, for which job and attempt."""

    runner: str
    job: str
    token: str


@dataclass(frozen=True, slots=True)
class Taken:
    """A token file: its path, the inode linked there and what it says.

    Both are compared before removing it: an inode number alone can be
    reused by a new file once ours is gone."""

    path: Path
    ino: int
    holder: Holder


class NotAFolder(OSError):
    """The folder's name holds something that is not a directory (a link...)."""


def numbers(names: list[str]) -> set[int]:
    """The token numbers among a folder's names (dot files and others ignored)."""
    return {int(n) for n in names if n.isdigit() and len(n) <= 6 and int(n) < MAX_NUMBER}


def folder(spool: Spool, *parts: str) -> Path:
    """spool/<parts...>, created as needed; NotAFolder if any part is not a real directory."""
    path = spool.root
    for part in parts:
        path = path / part
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o755)
            st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise NotAFolder(errno.ENOTDIR, "not a directory", str(path))
    return path


def encode(holder: Holder) -> bytes:
    return codec.json_bytes({"runner": holder.runner, "job": holder.job, "token": holder.token})


def take(spool: Spool, where: Path, free: list[int], holder: Holder) -> Taken | None:
    """Take the first number of ``free`` still free in ``where``; None when all are taken."""
    if not free:
        return None
    tmp = spool.write_tmp(encode(holder), "token")
    try:
        mine = os.lstat(tmp).st_ino
        for n in free:
            dst = where / str(n)
            try:
                spool.ops.link(tmp, dst)
            except FileExistsError:
                if not _same(dst, mine):  # else: our link succeeded, its reply was lost
                    continue
            spool.sync_dir(where)
            return Taken(dst, mine, holder)
        return None
    finally:
        spool.ops.unlink_quiet(tmp)


def _same(path: Path, ino: int) -> bool:
    try:
        return os.lstat(path).st_ino == ino
    except OSError:
        return False


def give_back(spool: Spool, taken: Taken) -> bool:
    """Remove a token, only while its name still holds that very file. True if removed."""
    found = read(spool, taken.path)
    if not isinstance(found, tuple) or found != (taken.holder, taken.ino):
        return False
    try:
        spool.ops.unlink(taken.path)
    except FileNotFoundError:
        return False
    spool.sync_dir(taken.path.parent)
    return True


def read(spool: Spool, path: Path) -> tuple[Holder, int] | str | None:
    """(holder, inode) of a token file, the reason it is not a valid one, or None if gone."""
    try:
        data, st = spool.ops.read_regular_stat(path, MAX_BYTES)
    except FileNotFoundError:
        return None
    except NotRegularFile:
        return "not a regular file"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    found = decode(data)
    return found if isinstance(found, str) else (found, st.st_ino)


def decode(data: bytes) -> Holder | str:
    """The holder a token file names, or the reason it names none."""
    if len(data) > MAX_BYTES:
        return f"larger than the {MAX_BYTES}-byte cap"
    try:
        body: Any = codec.parse_json(data)
    except InvalidJobFile as exc:
        return str(exc)
    if not isinstance(body, dict) or set(body) != _FIELDS:
        return "not a token (fields: runner, job, token)"
    values = [body["runner"], body["job"], body["token"]]
    if not all(isinstance(v, str) and len(v) <= 300 and v.isprintable() for v in values):
        return "not a token (its fields must be short printable strings)"
    if not is_valid_id(body["job"]):
        return "not a token (job is not a job id)"
    return Holder(body["runner"], body["job"], body["token"])


def remove_if(spool: Spool, path: Path, ino: int, holder: Holder) -> bool:
    """Remove a token found at path (a dead holder's), only if it is still that file."""
    return give_back(spool, Taken(path, ino, holder))
