"""Reading a job's own log: the tail for a page, and new bytes for a live tail.

Owns byte offsets and text decoding of ``Spool.job_log_path(id)`` files.
The log is only ever read, with a cap per call, so a 50 MB log costs one
bounded read, and the whole log is served up to a cap as well. Job code can
write the logs' directory, so the file is opened as every file beside a
job's log is (:func:`jobspool.sidefiles.open_file`): without following a
symbolic link (at its name, or a directory swapped for one), without
blocking on a FIFO; anything but a regular file with a single name reads as
missing.

Invariants:
* ``next_offset`` is a byte offset that ends on a whole UTF-8 character and
  is what the caller passes back as ``offset``; text never repeats or skips.
* An offset past the end means the file was replaced or truncated: reading
  restarts at the beginning and says ``reset``.
* A tail that starts mid-file starts at the next line, so it never shows half
  a line or half a character.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobspool import sidefiles

TAIL_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024
CUT = b"\n[jobspool: the log goes on past this point; only its first %d bytes are shown]\n"


@dataclass(frozen=True)
class LogChunk:
    exists: bool
    text: str
    offset: int  # where this text starts
    next_offset: int
    size: int
    reset: bool = False  # the file shrank: text starts again at 0
    cut: bool = False  # there is more before offset (a tail) or after next_offset

    def to_json(self) -> dict[str, Any]:
        return {
            "exists": self.exists,
            "text": self.text,
            "offset": self.offset,
            "next_offset": self.next_offset,
            "size": self.size,
            "reset": self.reset,
            "cut": self.cut,
        }


def _complete_utf8(data: bytes) -> int:
    """Length of the longest prefix of data that does not end mid-character."""
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 == 0x80:  # continuation byte: keep looking for the lead
            continue
        if byte & 0x80 == 0:
            return end
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return end if back >= need else end - back
    return end


def read_log(path: Path, offset: int | None = None, limit: int = CHUNK_BYTES) -> LogChunk:
    """Bytes from ``offset`` (None: the last TAIL_BYTES), at most ``limit`` of them."""
    fd = sidefiles.open_file(path)
    if fd is None:
        return LogChunk(exists=False, text="", offset=0, next_offset=0, size=0)
    try:
        size = os.fstat(fd).st_size
        reset = False
        tail = offset is None
        if offset is None:
            start = max(0, size - TAIL_BYTES)
        elif offset > size:
            start, reset = 0, True
        else:
            start = max(0, offset)
        os.lseek(fd, start, os.SEEK_SET)
        data = os.read(fd, max(0, min(limit, size - start)))
    finally:
        os.close(fd)
    skipped = 0
    if tail and start > 0:
        newline = data.find(b"\n")
        skipped = newline + 1 if 0 <= newline < len(data) - 1 else 0
        while skipped < len(data) and data[skipped] & 0xC0 == 0x80:
            skipped += 1  # no newline to start at: at least start on a character
    usable = _complete_utf8(data)
    text = data[skipped:usable].decode("utf-8", "replace")
    next_offset = start + usable
    return LogChunk(
        exists=True,
        text=text,
        offset=start + skipped,
        next_offset=next_offset,
        size=size,
        reset=reset,
        cut=(tail and start > 0) or next_offset < size,
    )


def log_size(path: Path) -> int | None:
    fd = sidefiles.open_file(path)
    if fd is None:
        return None
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def open_log(path: Path, limit: int) -> Iterator[bytes] | None:
    """The log's first ``limit`` bytes, streamed (with a line saying so when
    there is more), the file closed at the end; None if there is no log."""
    fd = sidefiles.open_file(path)
    return None if fd is None else sidefiles.stream(fd, limit, CUT % limit)
