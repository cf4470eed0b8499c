"""ExportJob: writes a CSV report, reporting progress as it goes.

Shows the habits a real job needs under at-least-once delivery: it writes to
a temporary name and renames into place, so a retried attempt never leaves a
half-written file, and it reports progress the dashboard can show.

It also shows how a job that takes a path from its params stays inside its
own directory. ``path`` is relative to the export directory: ``exports/`` in
the spool the job runs from (in the current directory when it runs outside a
runner). Absolute paths, ``..`` and empty parts are refused, and so is a
symbolic link anywhere on the way: each directory is opened (and created
when missing) relative to the one before it without following links, and
the file is created in the last one, so nothing planted in the tree can send
the write elsewhere. A refused path fails the attempt with UnsafeExportPath.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import stat
import time

from jobspool import current_job, report_progress

EXPORT_DIR = "exports"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Windows has neither directory descriptors nor O_NOFOLLOW: there each part
# is checked by name before it is used.
_BY_FD = os.open in os.supports_dir_fd and _NOFOLLOW != 0
_LINK_ERRORS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)  # EMLINK: BSD's O_NOFOLLOW


class UnsafeExportPath(ValueError):
    """The export path would leave the export directory or follow a link."""


def _parts(path: str) -> list[str]:
    """The relative path's parts, or UnsafeExportPath saying what is wrong."""
    if "\x00" in path:
        raise UnsafeExportPath(f"export path {path!r} may not contain a NUL character")
    plain = path.replace("\\", "/")
    if plain.startswith("/") or os.path.isabs(path) or os.path.splitdrive(path)[0]:
        raise UnsafeExportPath(f"export path {path!r} must be a relative path like day1.csv")
    parts = plain.split("/")
    if not parts[-1]:
        raise UnsafeExportPath(f"export path {path!r} must name a file (like reports/day1.csv)")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeExportPath(f"export path {path!r} may not contain '..', '.' or empty parts")
    return parts


def _refused(path: str, where: str) -> UnsafeExportPath:
    return UnsafeExportPath(f"export path {path!r}: {where} is a symbolic link or not a directory")


def _export_base() -> str:
    """The directory that holds the export directory."""
    ctx = current_job()
    return ctx.spool if ctx is not None and ctx.spool else os.getcwd()


def _enter(parent: int, name: str) -> int:
    """The directory ``name`` in the open ``parent``: created if missing, never a link."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
    return os.open(name, _DIR_FLAGS | _NOFOLLOW, dir_fd=parent)


def _open_folder(path: str, parts: list[str]) -> int:
    """The open directory the file goes into, each step taken without following links."""
    here = os.open(_export_base(), _DIR_FLAGS)
    steps = [EXPORT_DIR, *parts[:-1]]
    for n, name in enumerate(steps):
        try:
            inner = _enter(here, name)
        except OSError as exc:
            if exc.errno in _LINK_ERRORS:
                raise _refused(path, "/".join(steps[: n + 1])) from None
            raise
        finally:
            os.close(here)
        here = inner
    return here


def _checked_folder(path: str, parts: list[str]) -> str:
    """Without directory descriptors: each step must be a real directory, or is created."""
    here = _export_base()
    for name in [EXPORT_DIR, *parts[:-1]]:
        here = os.path.join(here, name)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            os.mkdir(here, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):  # lstat: a link is not a directory
            raise _refused(path, here)
    return here


class ExportJob:
    def export(self, path: str, rows: int = 100, pause: float = 0.0) -> dict[str, object]:
        """Write ``rows`` rows of squares to ``path`` under the export directory."""
        if rows < 0:
            raise ValueError("rows must be zero or more")
        parts = _parts(path)
        target = os.path.join(_export_base(), EXPORT_DIR, *parts)
        ctx = current_job()
        name = parts[-1]
        tmp = f".{name}.{ctx.id if ctx else 'inline'}.part"
        if _BY_FD:
            folder = _open_folder(path, parts)
            try:
                _publish(path, name, tmp, folder, (rows, pause))
            finally:
                os.close(folder)
        else:
            here = _checked_folder(path, parts)
            _publish(path, os.path.join(here, name), os.path.join(here, tmp), None, (rows, pause))
        report_progress(1.0, f"wrote {rows} rows")
        print(f"ExportJob: wrote {rows} rows to {target}", flush=True)
        return {"path": target, "rows": rows}


def _publish(
    path: str, name: str, tmp: str, folder: int | None, rows_and_pause: tuple[int, float]
) -> None:
    """Rows into a fresh ``tmp`` (never an existing file or link), renamed over ``name``."""
    try:
        st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UnsafeExportPath(f"export path {path!r} is a symbolic link or not a regular file")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=folder)  # left by an earlier attempt of this job
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    fd = os.open(tmp, flags, 0o644, dir_fd=folder)
    with open(fd, "w", newline="", encoding="utf-8") as fh:
        _write_rows(fh, *rows_and_pause)
        fh.flush()
        os.fsync(fh.fileno())
    # A rename replaces the name itself: a link put there meanwhile is not followed.
    os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    if folder is not None:
        os.fsync(folder)


def _write_rows(fh: io.TextIOWrapper, rows: int, pause: float) -> None:
    writer = csv.writer(fh)
    writer.writerow(["n", "square"])
    step = max(1, rows // 20)
    for n in range(rows):
        writer.writerow([n, n * n])
        if n % step == 0:
            report_progress((n + 1) / max(rows, 1), f"{n + 1} of {rows} rows")
            if pause:
                time.sleep(pause)
