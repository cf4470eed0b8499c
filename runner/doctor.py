"""``jobspool doctor``: does this mount give the spool what it relies on?

Owns the probes and their verdicts. Each check is one :class:`Check` (OK,
WARN or FAIL) whose text says what was found and, when it is not OK, what to
change: the marker and its format, the layout, the modes of the threat model
(:mod:`jobspool.access`), the user, atomic rename, link without replace,
exclusive create, whether the runner's watcher sees a new file, the skew
between this host's clock and the filesystem's timestamps, the cost of an
fsync, and free space and inodes against the configured minimums.

Invariants:

1. Nothing is probed in a directory that is not a spool: the marker is the
   first check, and its failure ends the run with nothing written.
2. Every probe file lives in one fresh directory ``tmp/.doctor-<random>``
   (tmp/ is never read as jobs, so runners at work are not disturbed), which
   is removed afterwards whatever happens; a leftover of a killed doctor is
   removed by the runners' tmp/ cleanup.
3. Every wait is bounded (the watch probe waits :data:`WATCH_WAIT` seconds).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from jobspool import access, sentinel
from jobspool.config import Config
from jobspool.messages import Event, FileChanged
from jobspool.spool import DIRS, Spool

OK, WARN, FAIL = "OK", "WARN", "FAIL"
WATCH_WAIT = 2.0
FSYNC_ROUNDS = 5
FSYNC_SLOW_MS = 50.0
SKEW_WARN = 2.0  # coarse timestamps (FAT, some SMB servers) round to 2 s
SKEW_FAIL = 60.0  # the grace given to a young tmp/ twin or unreadable file
# Filesystems on which inotify sees only the changes made through this mount.
SHARED_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "afs"}


@dataclass(frozen=True)
class Check:
    level: str
    name: str
    text: str

    def line(self) -> str:
        return f"{self.level:<4} {self.name}: {self.text}"


@dataclass(frozen=True)
class Report:
    header: str
    checks: list[Check]

    @property
    def failed(self) -> bool:
        return any(c.level == FAIL for c in self.checks)

    def summary(self) -> str:
        n = {lvl: sum(c.level == lvl for c in self.checks) for lvl in (OK, WARN, FAIL)}
        return f"doctor: {n[OK]} OK, {n[WARN]} WARN, {n[FAIL]} FAIL"


def examine(cfg: Config) -> Report:
    """Run every check on the config's spool (module invariants 1-3)."""
    root = cfg.spool_dir
    fstype, mount = filesystem_of(root)
    header = f"jobspool doctor: {root} ({fstype} mounted at {mount})"
    try:
        marker = sentinel.check(root)
    except sentinel.NotASpool as exc:
        return Report(header, [Check(FAIL, "marker", str(exc))])
    spool = Spool(root, log_dir=cfg.log_dir, create=False)
    checks = [_marker(marker), *_layout(spool), *_modes(spool), _user(spool)]
    checks += _probed(spool, cfg, fstype)
    checks += [*_fsync(spool, cfg), *_space(spool, cfg)]
    return Report(header, checks)


# ------------------------------------------------------------------ what is there


def _marker(marker: sentinel.Marker) -> Check:
    made = f", created {marker.created_at}" if marker.created_at else ""
    return Check(
        OK, "marker", f"format {marker.format} (this jobspool reads up to {sentinel.FORMAT}){made}"
    )


def _layout(spool: Spool) -> list[Check]:
    paths = [spool.dir(d) for d in DIRS] + [spool.log_dir, spool.log_dir / "jobs"]
    bad = []
    for path in paths:
        where = access.label(spool, path)
        if path.is_symlink():
            bad.append(
                Check(
                    FAIL,
                    "layout",
                    f"{where} is a symbolic link; runners refuse it: make it a real directory",
                )
            )
        elif path.exists() and not path.is_dir():
            bad.append(Check(FAIL, "layout", f"{where} is not a directory: move it away"))
        elif not path.exists():
            bad.append(
                Check(
                    WARN,
                    "layout",
                    f"{where} is missing: `jobspool init --spool {spool.root}` creates it",
                )
            )
    return bad or [Check(OK, "layout", f"all {len(paths)} directories present, none a link")]


def _modes(spool: Spool) -> list[Check]:
    found = access.audit(spool)
    if not access.POSIX:
        return [Check(WARN, "modes", "no POSIX modes here: the threat model is not enforced")]
    if not found:
        return [Check(OK, "modes", "only the runner's user can write outside tmp/ and pending/")]
    return [Check(f.level, "modes", f.text) for f in found]


def _user(spool: Spool) -> Check:
    if access.running_as_root():
        return Check(
            WARN,
            "user",
            "running as root: run the runner as an unprivileged user "
            "that owns the spool, never as root (job code runs as the runner's user)",
        )
    if not access.POSIX:
        return Check(OK, "user", "no POSIX owners here")
    owner = os.stat(spool.root).st_uid
    if owner != os.geteuid():
        return Check(
            WARN,
            "user",
            f"the spool is owned by uid {owner}, not by this user "
            f"(uid {os.geteuid()}): run doctor and the runner as the spool's owner",
        )
    return Check(OK, "user", f"this user (uid {owner}) owns the spool and is not root")


# ------------------------------------------------------------------ probes


@contextlib.contextmanager
def probe_dir(spool: Spool) -> Iterator[Path]:
    """A fresh, private directory under tmp/, removed afterwards (invariant 2)."""
    path = spool.dir("tmp") / f".doctor-{secrets.token_hex(8)}"
    path.mkdir(mode=0o700)
    try:
        for sub in ("a", "b", "pending", "control"):
            (path / sub).mkdir()
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _probed(spool: Spool, cfg: Config, fstype: str) -> list[Check]:
    try:
        with probe_dir(spool) as probe:
            return [
                _guarded("rename", lambda: _rename(probe)),
                _guarded("link", lambda: _link(probe)),
                _guarded("exclusive create", lambda: _exclusive(probe)),
                _guarded("watch", lambda: _watch(probe, cfg, fstype)),
                _guarded("clock", lambda: _clock(probe)),
            ]
    except OSError as exc:
        where = spool.dir("tmp")
        return [
            Check(
                FAIL,
                "probes",
                f"cannot make a probe directory in {where}: "
                f"{exc.strerror}: the runner's user must be able to write there",
            )
        ]


def _guarded(name: str, probe: Callable[[], Check]) -> Check:
    try:
        return probe()
    except OSError as exc:
        return Check(FAIL, name, f"the probe failed: {exc}")


def _write(path: Path, data: bytes = b"probe\n") -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _rename(probe: Path) -> Check:
    src, dst = probe / "a" / "f", probe / "b" / "f"
    _write(src, b"rename\n")
    os.rename(src, dst)
    if src.exists() or dst.read_bytes() != b"rename\n":
        return Check(
            FAIL,
            "rename",
            "a rename between two directories left the old name or "
            "changed the file: claims and moves are not atomic here; use another "
            "filesystem",
        )
    return Check(OK, "rename", "a rename between two spool directories is one step")


def _link(probe: Path) -> Check:
    src, dst = probe / "b" / "l", probe / "b" / "l2"
    _write(src, b"first\n")
    _write(probe / "b" / "other", b"second\n")
    try:
        os.link(src, dst)
    except OSError as exc:
        return Check(
            FAIL,
            "link",
            f"hard links fail here ({errno.errorcode.get(exc.errno or 0)}):"
            " jobs are published by link without replace; use a filesystem with hard "
            "links (ext4, xfs, NFS...)",
        )
    try:
        os.link(probe / "b" / "other", dst)
    except FileExistsError:
        return Check(OK, "link", "link onto an existing name fails with EEXIST (no replace)")
    return Check(
        FAIL,
        "link",
        "link onto an existing name did not fail: a job could reach two "
        "terminal states; use another filesystem",
    )


def _exclusive(probe: Path) -> Check:
    path = probe / "b" / "x"
    _write(path)
    try:
        _write(path)
    except FileExistsError:
        return Check(OK, "exclusive create", "O_EXCL refuses an existing name")
    return Check(
        FAIL,
        "exclusive create",
        "O_EXCL created over an existing file: writes to tmp/ may collide; use another filesystem",
    )


def _watch(probe: Path, cfg: Config, fstype: str) -> Check:
    from jobspool.watcher import Watcher

    target = probe / "pending" / "probe.json"
    seen = threading.Event()

    def post(event: Event) -> None:
        if isinstance(event, FileChanged) and event.path == str(target):
            seen.set()

    watcher = Watcher(probe, post)
    watcher.start()
    try:
        start = time.monotonic()
        _write(target)
        noticed = seen.wait(WATCH_WAIT)
        took = (time.monotonic() - start) * 1000
    finally:
        watcher.stop()
    poll = cfg.settings.poll_seconds
    if not noticed:
        return Check(
            WARN,
            "watch",
            f"no notification within {WATCH_WAIT:g} s of a new file in "
            f"pending/: run runners with --no-watch, and with --poll 1 if waiting up to "
            f"poll_seconds ({poll:g} s now) for a job is too long",
        )
    if fstype in SHARED_FS or fstype.startswith("fuse"):
        return Check(
            WARN,
            "watch",
            f"seen in {took:.1f} ms, but {fstype} is a shared or FUSE filesystem, where "
            "notifications show only changes made through this mount: jobs submitted "
            f"elsewhere wait for the rescan, every poll_seconds ({poll:g} s now; --poll 1 "
            "for a second)",
        )
    return Check(
        OK, "watch", f"the runner's watcher saw a new file in pending/ after {took:.1f} ms"
    )


def _clock(probe: Path) -> Check:
    path = probe / "b" / "clock"
    before = time.time()
    _write(path)
    after = time.time()
    mtime = os.stat(path).st_mtime
    skew = 0.0 if before - 0.01 <= mtime <= after + 0.01 else mtime - (before + after) / 2
    what = (
        f"file times differ from this host's clock by {skew:+.1f} s: tmp/ cleanup and the "
        "grace given to a file still being written go by file times (liveness never "
        "compares clocks); run NTP on this host and on the file server"
    )
    if abs(skew) >= SKEW_FAIL:
        return Check(FAIL, "clock", what)
    if abs(skew) >= SKEW_WARN:
        return Check(WARN, "clock", what)
    return Check(OK, "clock", f"file times agree with this host's clock ({skew:+.3f} s)")


def _fsync(spool: Spool, cfg: Config) -> list[Check]:
    if not cfg.settings.durable:
        return [
            Check(
                WARN,
                "fsync",
                "durable: false in the config: nothing is fsynced, so a "
                "power loss can lose acknowledged jobs; keep it for tmpfs and tests",
            )
        ]
    try:
        with probe_dir(spool) as probe:
            costs = [_timed_fsync(probe / "b" / f"sync{n}") for n in range(FSYNC_ROUNDS)]
    except OSError as exc:
        return [Check(FAIL, "fsync", f"the probe failed: {exc}")]
    each = ", ".join(f"{c:.1f}" for c in costs)
    median = statistics.median(costs)
    text = f"{each} ms each ({FSYNC_ROUNDS} small files); a durable submit makes two"
    if median > FSYNC_SLOW_MS:
        rate = 1000 / (2 * median)
        return [Check(WARN, "fsync", f"{text}: slow, about {rate:.0f} submits per second")]
    return [Check(OK, "fsync", text)]


def _timed_fsync(path: Path) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"x" * 4096)
        start = time.perf_counter()
        os.fsync(fd)
        return (time.perf_counter() - start) * 1000
    finally:
        os.close(fd)


# ------------------------------------------------------------------ space


def _space(spool: Spool, cfg: Config) -> list[Check]:
    if not hasattr(os, "statvfs"):
        free, inodes = shutil.disk_usage(spool.root).free, None
    else:
        st = os.statvfs(spool.root)
        free, inodes = st.f_bavail * st.f_frsize, st.f_favail
    s = cfg.settings
    checks = [_against("space", free, s.min_free_bytes, "min_free_bytes", _mib)]
    if inodes is not None:
        checks.append(_against("inodes", inodes, s.min_free_inodes, "min_free_inodes", str))
    return checks


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _against(name: str, free: int, minimum: int, key: str, show: Callable[[int], str]) -> Check:
    if minimum == 0:
        return Check(
            WARN,
            name,
            f"{show(free)} free; {key} is 0, so a full disk is met by "
            "finishes that wait instead of submits that are refused: set a minimum",
        )
    if free < minimum:
        return Check(
            FAIL,
            name,
            f"{show(free)} free, under {key} ({show(minimum)}): submits "
            "are refused now; free some or lower the minimum",
        )
    return Check(OK, name, f"{show(free)} free ({key}: {show(minimum)})")


def filesystem_of(path: Path) -> tuple[str, str]:
    """The type and mount point of the filesystem holding path (Linux)."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return "an unknown filesystem", "?"
    target = os.path.realpath(path)
    best, best_len = ("an unknown filesystem", "?"), -1
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or not rest:
            continue
        mount = fields[4].encode().decode("unicode_escape")  # \040 is a space
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= best_len:  # later mounts hide earlier ones
            best, best_len = (rest[0], mount), len(mount)
    return best
