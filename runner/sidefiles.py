"""Files beside a job's log: how the runner, the CLI and the dashboard open them.

A job's log (``logs/jobs/<id>.log``) and its progress file
(``<id>.progress.json``) are written by job code, which is not trusted, and
sit in a directory that code can write. So a name there may be a symbolic
link to a file anywhere, a hard link to one, a FIFO that blocks whoever
opens it, or a file far larger than any log. This module owns opening them:

* the directory is opened without following a link in its last component,
  then the file within it (``dir_fd``), again without following a link and
  without blocking (a FIFO or a socket fails to open, or opens and is then
  refused);
* only a regular file with a single name is used: anything else reads as
  missing, and is never written to or cut;
* every read is capped by its caller's limit.

Where the platform has no directory descriptors or no ``O_NOFOLLOW``
(Windows), the file is checked with ``lstat`` before it is opened.
Nothing here creates a file: the attempt's own log is opened by the
executor.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from jobspool.fsops import StrPath

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BY_FD = os.open in os.supports_dir_fd and _NOFOLLOW != 0
CHUNK = 64 * 1024


def open_file(path: StrPath, flags: int = os.O_RDONLY) -> int | None:
    """A descriptor of path if it is a regular, single-linked file in a
    directory that is not a link; None otherwise (missing included)."""
    flags |= _NOFOLLOW | _NONBLOCK | _BINARY | _CLOEXEC
    folder, name = os.path.split(os.fspath(path))
    try:
        if _BY_FD:
            dfd = os.open(folder, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
            try:
                fd = os.open(name, flags, dir_fd=dfd)
            finally:
                os.close(dfd)
        else:  # pragma: no cover - Windows
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return None
            fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        return None
    return fd


def read_head(path: StrPath, cap: int) -> bytes | None:
    """Up to cap + 1 bytes from the start (so "too big" shows); None if not a file here."""
    fd = open_file(path)
    if fd is None:
        return None
    try:
        return _read(fd, 0, cap + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_tail(path: StrPath, cap: int) -> bytes | None:
    """The last cap bytes at most; None if not a file here."""
    fd = open_file(path)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        return _read(fd, max(0, size - cap), cap)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read(fd: int, start: int, cap: int) -> bytes:
    os.lseek(fd, start, os.SEEK_SET)
    chunks = []
    while cap > 0:
        chunk = os.read(fd, min(cap, CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        cap -= len(chunk)
    return b"".join(chunks)


def stream(fd: int, cap: int, marker: bytes = b"") -> Iterator[bytes]:
    """The first cap bytes of an open file, in chunks, then marker if there
    was more; the descriptor is closed when the stream ends or is closed."""
    try:
        left = cap
        while left > 0:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
        if os.read(fd, 1):
            yield marker
    finally:
        os.close(fd)
