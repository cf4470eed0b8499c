"""The two seed logs: ``background_jobs.log`` and ``background_jobs_errors.log``.

One line per transition (submitted, started, completed, failed,
retry_scheduled, cancelled, recovered...) in ``key=value`` form; errors, with
their tracebacks, also go to the errors log. Files rotate by size. Several
processes may append to the same files: each line is one ``write`` on an
``O_APPEND`` descriptor, so lines never interleave.

This is a hot path of the runner (two lines per attempt), so it bypasses the
``logging`` module: a line is formatted once and written with one syscall.

Invariant: a record is exactly one line that starts with its time stamp.
Values come from job files, file names and job code, so every character
that could end a line for some reader, redraw a terminal or reorder what it
shows (C0, DEL, C1, U+2028/U+2029, bidirectional overrides) is written as a
backslash escape; a traceback's own lines follow their record indented, so
none of them can pass for a record.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from jobspool import sidefiles

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}
_RECHECK = 200  # writes between looks at the real size (other processes append too)
MAIN_LOG = "background_jobs.log"
ERROR_LOG = "background_jobs_errors.log"


class AppendRotatingFile:
    """A size-rotating log file written with one O_APPEND write per line.

    The size is tracked in memory and re-read every few hundred writes; a
    rotation done by another process is noticed then (the inode changed).
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._fd = -1
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        st = os.fstat(self._fd)
        self._size, self._ino, self._writes = st.st_size, st.st_ino, 0

    def _recheck(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is None or st.st_ino != self._ino:
            os.close(self._fd)
            self._open()
        else:
            self._size, self._writes = st.st_size, 0

    def _rotate(self) -> None:
        os.close(self._fd)
        for n in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{n}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups > 0 and self.path.exists():
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._writes += 1
            if self._writes >= _RECHECK:
                self._recheck()
            if self._size > 0 and self._size + len(data) > self.max_bytes:
                self._rotate()
            os.write(self._fd, data)
            self._size += len(data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class EventLog:
    def __init__(self, log_dir: Path, max_bytes: int, backups: int, console: TextIO | None):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.main = AppendRotatingFile(log_dir / MAIN_LOG, max_bytes, backups)
        self.errors = AppendRotatingFile(log_dir / ERROR_LOG, max_bytes, backups)
        self.console = console

    def write(self, level: int, line: str) -> None:
        data = line.encode("utf-8", "replace")
        try:
            self.main.write(data)
            if level >= ERROR:
                self.errors.write(data)
        except OSError as exc:  # a full disk must not stop the runner
            print(f"jobspool: cannot write log: {exc}", file=sys.stderr)
        if self.console is not None:
            self.console.write(line)
            self.console.flush()

    def close(self) -> None:
        self.main.close()
        self.errors.close()


_sink: EventLog | None = None
_stamp_cache: tuple[int, str] = (-1, "")


def setup(
    log_dir: Path, *, max_bytes: int = 10 * 1024 * 1024, backups: int = 5, console: bool = False
) -> EventLog:
    """Open the log files for this process (replacing any earlier setup)."""
    global _sink
    close()
    _sink = EventLog(log_dir, max_bytes, backups, sys.stderr if console else None)
    return _sink


def close() -> None:
    global _sink
    if _sink is not None:
        _sink.close()
        _sink = None


def _stamp(now: float) -> str:
    global _stamp_cache
    sec = int(now)
    if _stamp_cache[0] != sec:
        _stamp_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{_stamp_cache[1]}.{int((now - sec) * 1000):03d}Z"


# Line breaks for str.splitlines and terminals (C0, DEL, C1 include \v, \f,
# \x1c-\x1e and NEL), the Unicode line and paragraph separators, and the
# bidirectional controls that make a line show other than what it holds.
_UNSAFE = [
    *range(0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNSAFE}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_TRACE_ESCAPES = {c: e for c, e in _ESCAPES.items() if c != ord("\n")}
_QUOTED_ESCAPES = _ESCAPES | {ord("\\"): "\\\\", ord('"'): '\\"'}
_NEEDS_QUOTES = re.compile(r'[\s"=\\\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]')


def _fmt(value: Any) -> str:
    if type(value) is int:  # most fields: pids, attempts
        return str(value)
    text = str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return '"' + text.translate(_QUOTED_ESCAPES) + '"'
    return text


def _continuation(exc_text: str) -> str:
    """A traceback under its record: each of its lines escaped and indented."""
    lines = exc_text.rstrip().split("\n")
    return "".join("\n  " + line.translate(_TRACE_ESCAPES) for line in lines)


def format_line(action: str, level: int, exc_text: str | None, fields: dict[str, Any]) -> str:
    parts = [_stamp(time.time()), _NAMES.get(level, str(level)), action]
    parts += [f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None]
    line = " ".join(parts)
    if exc_text:
        line += _continuation(exc_text)
    return line + "\n"


def event(action: str, level: int = INFO, exc_text: str | None = None, **fields: Any) -> None:
    """Log one transition: ``completed job=ID name=SampleJob.process attempt=1 ...``."""
    if _sink is not None:
        _sink.write(level, format_line(action, level, exc_text, fields))


def append(log_dir: Path, action: str, level: int = INFO, **fields: Any) -> None:
    """One line from a process that keeps no log open (a submitting CLI or app)."""
    line = format_line(action, level, None, fields).encode("utf-8", "replace")
    path = os.path.join(log_dir, MAIN_LOG)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    try:
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:  # a first line: make the directory (not on every line)
            log_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass  # the job is queued; a missing log line must not fail the submit


TRUNCATED = b"\n[jobspool: log reached its size cap; output written before this line was cut]\n"


def cap_file(path: str, max_bytes: int) -> bool:
    """Keep a job's log under max_bytes while the job keeps writing to it.

    The job appends with O_APPEND, so cutting the file back is safe: its next
    write lands at the new end. The head (first half) is kept, with a marker,
    so the log shows how the job started and what it printed most recently.
    Returns True when the file was cut.

    Job code can write the log's directory: only the job's own log is ever
    cut, never a file a link at its name points to, nor one with another name
    elsewhere, nor one behind a directory swapped for a link
    (:func:`jobspool.sidefiles.open_file`), and a FIFO never blocks.
    """
    try:
        if os.lstat(path).st_size <= max_bytes:  # the common case: not even opened
            return False
    except OSError:
        return False
    fd = sidefiles.open_file(path, os.O_WRONLY | os.O_APPEND)
    if fd is None:
        return False
    try:
        if os.fstat(fd).st_size <= max_bytes:
            return False
        os.ftruncate(fd, max_bytes // 2)
        os.write(fd, TRUNCATED)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
