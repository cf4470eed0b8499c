"""Every filesystem call the spool makes, in one replaceable object.

The spool never calls ``os`` directly for job files: it calls a
:class:`FileOps`. Tests swap in a subclass that fails chosen calls with chosen
errnos (disk full, EIO, a lost rename reply), so fault plans reach every
write, fsync, link, rename and unlink of submit, claim and finish.

Invariants kept here: a durable write is write-all + fsync before close; a
failed fsync closes and discards the file (a retried fsync on the same file
proves nothing); directory fsyncs are skipped only where the OS has none.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
WINDOWS = os.name == "nt"

# Windows refuses to rename a file that another process (an indexer, the
# dashboard) holds open; such failures are retried a few times.
_BUSY_RETRIES = 5 if WINDOWS else 0


StrPath = str | os.PathLike[str]
T = TypeVar("T")


class NotRegularFile(OSError):
    """A path in a status directory that is a link, FIFO, directory..."""


class HardLinked(NotRegularFile):
    """A job file with a second name somewhere: possibly planted, never trusted."""


# Opening these fails instead of reading: a symlink (O_NOFOLLOW), a socket.
_NOT_A_FILE = {errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EOPNOTSUPP}
_STALE_RETRIES = 3


def retry_stale(fn: Callable[[], T]) -> T:
    """NFS answers ESTALE when a handle went stale under it; looking again helps."""
    for attempt in range(_STALE_RETRIES):
        try:
            return fn()
        except OSError as exc:
            if exc.errno != errno.ESTALE or attempt == _STALE_RETRIES - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _read_capped(fd: int, cap: int, size_hint: int) -> bytes:
    """Up to cap bytes from fd. The first read asks for the file's size and
    one byte more (so growth shows): os.read allocates what it is asked for,
    and a megabyte per small file costs an mmap and a munmap each time."""
    chunks = []
    want = min(cap, size_hint + 1)
    while cap > 0:
        chunk = os.read(fd, want)
        if not chunk:
            break
        chunks.append(chunk)
        cap -= len(chunk)
        want = min(cap, 1 << 16)
    return b"".join(chunks)


class FileOps:
    """Thin wrappers over os; subclass and override to inject faults."""

    def write_new(self, path: StrPath, data: bytes, *, durable: bool) -> None:
        """Create path (must not exist), write all of data, fsync if durable."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = self.write(fd, view)
                view = view[written:]
            if durable:
                self.fsync(fd)
        except BaseException:
            os.close(fd)
            self.unlink_quiet(path)
            raise
        self.close(fd)

    def write(self, fd: int, data: memoryview) -> int:
        written = os.write(fd, data)
        if written <= 0:
            raise OSError(errno.EIO, "short write")
        return written

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def read_regular_stat(
        self, path: StrPath, limit: int, *, single_link: bool = False
    ) -> tuple[bytes, os.stat_result]:
        """Bytes of a regular file, never following a link or blocking on a FIFO,
        and the status of the very file that was read.

        Reads at most limit + 1 bytes so the caller can tell "too big" apart.
        With single_link, a file that has another name elsewhere is refused.
        """
        flags = os.O_RDONLY | _O_BINARY | _O_NOFOLLOW | _O_NONBLOCK
        try:
            fd = retry_stale(lambda: os.open(path, flags))
        except OSError as exc:
            if exc.errno in _NOT_A_FILE:
                raise NotRegularFile(exc.errno, "not a regular file", str(path)) from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
            if single_link and st.st_nlink > 1:
                raise HardLinked(errno.EMLINK, "file has another hard link", str(path))
            return _read_capped(fd, limit + 1, st.st_size), st
        finally:
            os.close(fd)

    def rename(self, src: StrPath, dst: StrPath) -> None:
        """Atomic rename; on Windows also no-replace, on POSIX it replaces."""
        for attempt in range(_BUSY_RETRIES + 1):
            try:
                retry_stale(lambda: os.rename(src, dst))
                return
            except PermissionError:
                if attempt == _BUSY_RETRIES:
                    raise
                time.sleep(0.01 * (attempt + 1))

    def replace(self, src: StrPath, dst: StrPath) -> None:
        os.replace(src, dst)

    def link(self, src: StrPath, dst: StrPath) -> None:
        """Publish src under dst without ever replacing an existing dst."""
        try:
            os.link(src, dst)
        except FileExistsError:
            raise
        except OSError as exc:  # pragma: no cover - depends on the filesystem
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # No hard links here (some SMB/FAT mounts): fall back to a rename
            # that refuses to replace, where the OS offers one.
            if not WINDOWS:
                raise
            os.rename(src, dst)

    def unlink(self, path: StrPath) -> None:
        os.unlink(path)

    def unlink_quiet(self, path: StrPath) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def fsync_dir(self, path: StrPath) -> None:
        if WINDOWS:
            return
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sync_files(self, within: StrPath, paths: Sequence[StrPath]) -> None:
        """Make the contents of paths, all files of within's filesystem, durable.

        One syncfs(2) of that filesystem where the OS has it (Linux): one
        flush, however many files, which is what makes a batch cheaper than
        its files one by one; elsewhere, an fsync of each file.
        """
        if _syncfs(within):
            return
        for path in paths:
            fd = os.open(path, os.O_RDONLY | _O_BINARY)
            try:
                self.fsync(fd)
            finally:
                os.close(fd)

    def mkdir(self, path: StrPath) -> None:
        os.makedirs(path, exist_ok=True)

    def scandir_names(self, path: StrPath) -> list[str]:
        with os.scandir(path) as it:
            return [e.name for e in it]


_SYNCFS: list[Callable[[int], int]] = []


def _syncfs(within: StrPath) -> bool:
    """syncfs(2) on within's filesystem; False where the OS has none.

    Its errors are real: Linux reports a failed writeback to syncfs since
    5.8, and a failed flush must fail the batch, never pass for durable.
    """
    if not sys.platform.startswith("linux"):
        return False
    if not _SYNCFS:
        import ctypes  # only a batch needs it: not in every producer's import time

        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "syncfs"):
            return False
        _SYNCFS.append(libc.syncfs)
    fd = os.open(within, os.O_RDONLY | _O_DIRECTORY)
    try:
        if _SYNCFS[0](fd) != 0:
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(within))
    finally:
        os.close(fd)
    return True
