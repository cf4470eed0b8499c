"""The seal: proof that a record was written by a runner or a person's action.

Producers may write pending/, and they may write anything there: a record
that looks like a runner's own retry, with a revision, attempts and a
history. A job file in pending/ (or in running/, where a claim renames it
unchanged) is therefore only believed about its own bookkeeping when it
carries a seal: an HMAC-SHA256 of the record's bytes, keyed with a secret of
the spool that producers cannot read. Producers never need the secret: what
they write is a fresh submission and is treated as one.

Owns the key file and the seal's bytes on disk:

* the key is 32 random bytes in ``.jobspool.key`` at the spool's root, beside
  the marker, in a directory only the runner's user writes (runners/ holds
  only the runners' heartbeats and locks). It is created once, mode 0600, written and synced
  under a temporary name and linked into place (never replacing: the first
  process to create it wins, the others read that one), and never rotated,
  since every seal in the spool depends on it. It is read without following
  a link or blocking on a FIFO, and a key that is not a regular 32-byte file
  is refused;
* a sealed record is the record's JSON (``codec.encode_job``: one field per
  line) with one last field, ``"seal": "<64 hex digits>"``, the MAC of every
  byte before that field. The seal is the last field so that it is verified
  on the bytes as read, with no re-encoding.

Nothing here decides what an unsealed record may do; that is the intake's
rule (:mod:`jobspool.stages.intake`) and the spool's reads
(:meth:`jobspool.spool.Spool.load`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from jobspool.errors import SpoolError

KEY_NAME = ".jobspool.key"
KEY_BYTES = 32
FIELD = "seal"
_CONTEXT = b"jobspool seal 1\n"
_TRAILER = re.compile(rb',\n  "seal": "([0-9a-f]{64})"\n}\n')
_TRAILER_BYTES = 81
_END = b"\n}\n"
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_NOT_A_FILE = {errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EOPNOTSUPP}
_POSIX = os.name != "nt"


def key_path(folder: Path) -> Path:
    return folder / KEY_NAME


def read_key(folder: Path) -> bytes:
    """The spool's key; FileNotFoundError if there is none yet, SpoolError if
    what is there is not a key, PermissionError if it may not be read."""
    path = key_path(folder)
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        if exc.errno in _NOT_A_FILE:
            raise SpoolError(f"{path} is not a regular file; move it aside") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpoolError(f"{path} is not a regular file; move it aside")
        if _POSIX and st.st_mode & 0o077 and st.st_uid == os.geteuid():
            # Restored from a backup or copied without its mode: only we may read it.
            os.fchmod(fd, 0o600)
        data = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_BYTES:
        raise SpoolError(f"{path} holds {len(data)} bytes, not a {KEY_BYTES}-byte key")
    return data


def create_key(folder: Path, *, durable: bool) -> bytes:
    """Make the spool's key unless another process made it first; return the key."""
    tmp = folder / f"{KEY_NAME}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, key_path(folder))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if durable and _POSIX:
        # A record sealed with a key that a power loss takes back would read
        # as unsealed; the key's name is durable before anything is sealed.
        dfd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return read_key(folder)


def _mac(key: bytes, body: bytes) -> str:
    return hmac.new(key, _CONTEXT + body, hashlib.sha256).hexdigest()


def seal(data: bytes, key: bytes) -> bytes:
    """Record bytes from ``codec.encode_job`` with the seal as their last field."""
    if not data.endswith(_END):
        raise ValueError("not a record as codec.encode_job writes it")
    body = data[: -len(_END)]
    return body + f',\n  "{FIELD}": "{_mac(key, body)}"'.encode() + _END


def is_sealed(data: bytes, key: bytes) -> bool:
    """True if data ends with a seal that key made over every byte before it."""
    found = _TRAILER.fullmatch(data, len(data) - _TRAILER_BYTES)
    if found is None:
        return False
    expected = _mac(key, data[: found.start()]).encode()
    return hmac.compare_digest(found.group(1), expected)
