"""A small real filesystem for disk-pressure tests: a tmpfs mount, and a filler.

Mounting needs root (CAP_SYS_ADMIN). When it is not possible the test fails
with the reason: a disk-pressure test that silently does not run proves
nothing.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

CHUNK = 1 << 20


def mount_tmpfs(where: Path, options: str) -> None:
    """Mount a tmpfs at where (created if needed); fail the test if it cannot."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.fail("disk-pressure tests must run as root: they mount a small tmpfs")
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if out.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {where} ({options}): {out.stderr.strip()}")


def unmount(where: Path) -> None:
    """Unmount; detach lazily if something still holds it, and say so."""
    out = subprocess.run(
        ["umount", str(where)], capture_output=True, text=True, check=False, timeout=30
    )
    if out.returncode != 0:
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=30)
        pytest.fail(f"{where} was still busy at teardown: {out.stderr.strip()}")


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path, leave: int = 0) -> int:
    """Write zeros to path until the filesystem is full, then give back leave bytes.

    Returns the filler's size. tmpfs allocates a page for every written page,
    zeros included, so what remains free afterwards is ``leave`` rounded to pages.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        zeros = bytes(CHUNK)
        while True:
            try:
                if os.write(fd, zeros) == 0:
                    break
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        size = os.fstat(fd).st_size
        os.ftruncate(fd, max(0, size - leave))
        return os.fstat(fd).st_size
    finally:
        os.close(fd)
