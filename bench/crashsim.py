"""Power-loss states of a spool, enumerated from a log of its filesystem calls.

This is the ALICE method applied to the spool. A real operation runs on a
real spool through :class:`RecordingOps`, which logs every mutating call in
order. From that log and a :class:`Snapshot` taken just before the operation,
:func:`crash_states` builds, for a crash after the first ``k`` logged calls,
every on-disk state a power loss could leave, and :func:`materialise` writes
one such state into a fresh directory as real files.

The crash model (conservative, ext4-like, nothing assumed beyond fsync):

* a file's content is durable only after an fsync of that file, or after a
  syncfs(2) of its filesystem (``FileOps.sync_files``), which counts as an
  fsync of every file created before it and as nothing more: it makes no
  directory entry durable, since a name is promised by its directory's fsync
  alone. Until then a name that reached the disk may show the content
  empty, cut in half, or whole;
* a directory entry change (create, link, unlink, rename) is durable only
  after an fsync of its directory. Before that it may or may not have reached
  the disk, independently of every other unsynced change: any subset of the
  unsynced changes is a possible state. This is the *unordered* model, a
  superset of the per-directory "ordered" one; it is affordable here (an
  operation leaves at most a handful of unsynced changes) and it is the one
  that can catch the most mistakes;
* a rename is atomic (the old name or the new one, never neither nor both),
  as on every journalling filesystem ALICE models; a rename between two
  directories counts as durable only once *both* directories were fsynced
  after it;
* the snapshot taken before the operation is durable.

When a crash point has more than ``2**MAX_EXACT_BITS`` subsets, a seeded
sample of them is taken instead (the empty and the full subset always
included), so the caller can print the seed of a failing run.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import posixpath
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from jobspool.fsops import FileOps, StrPath

Kind = Literal["create", "fsync_file", "syncfs", "link", "rename", "unlink", "fsync_dir"]
DIR_CHANGES: frozenset[Kind] = frozenset({"create", "link", "rename", "unlink"})
MAX_EXACT_BITS = 8
SAMPLED_SUBSETS = 256
MAX_CONTENT_VARIANTS = 64
# Not part of the protocol and never touched by the operations we record
# (job logs are: a purge removes a job's log with its record).
UNTRACKED = ("logs/background_jobs",)  # the runners' own logs (and their rotations)


@dataclass(frozen=True)
class Call:
    """One mutating filesystem call, with paths relative to the spool root."""

    kind: Kind
    path: str
    dst: str = ""
    data: bytes = b""
    ino: int = 0

    def describe(self) -> str:
        if self.kind in ("link", "rename"):
            return f"{self.kind} {self.path} -> {self.dst}"
        if self.kind == "create":
            return f"create+write {self.path} ({len(self.data)} bytes)"
        return f"{self.kind} {self.path}"


class RecordingOps(FileOps):
    """A FileOps that performs every call for real and logs the mutating ones."""

    def __init__(self, root: StrPath) -> None:
        self.root = Path(root).absolute()
        self.calls: list[Call] = []
        self._quiet = False  # inside write_new, whose own clean-up is not a step

    def rel(self, path: StrPath) -> str:
        return Path(os.path.abspath(path)).relative_to(self.root).as_posix()

    def _log(self, call: Call) -> None:
        if not self._quiet:
            self.calls.append(call)

    def write_new(self, path: StrPath, data: bytes, *, durable: bool) -> None:
        self._quiet = True
        try:
            super().write_new(path, data, durable=durable)
        finally:
            self._quiet = False
        ino = os.lstat(path).st_ino
        self._log(Call("create", self.rel(path), data=bytes(data), ino=ino))
        if durable:
            self._log(Call("fsync_file", self.rel(path), ino=ino))

    def link(self, src: StrPath, dst: StrPath) -> None:
        super().link(src, dst)
        self._log(Call("link", self.rel(src), self.rel(dst), ino=os.lstat(dst).st_ino))

    def rename(self, src: StrPath, dst: StrPath) -> None:
        ino = os.lstat(src).st_ino
        super().rename(src, dst)
        self._log(Call("rename", self.rel(src), self.rel(dst), ino=ino))

    def replace(self, src: StrPath, dst: StrPath) -> None:
        ino = os.lstat(src).st_ino
        super().replace(src, dst)
        self._log(Call("rename", self.rel(src), self.rel(dst), ino=ino))

    def unlink(self, path: StrPath) -> None:
        ino = os.lstat(path).st_ino
        super().unlink(path)
        self._log(Call("unlink", self.rel(path), ino=ino))

    def unlink_quiet(self, path: StrPath) -> None:
        # Routed through unlink so that a removal that happened is logged.
        with contextlib.suppress(FileNotFoundError):
            self.unlink(path)

    def fsync_dir(self, path: StrPath) -> None:
        super().fsync_dir(path)
        self._log(Call("fsync_dir", self.rel(path)))

    def sync_files(self, within: StrPath, paths: Sequence[StrPath]) -> None:
        # Logged as one call, as syncfs(2) is one flush: the model reads it as
        # an fsync of every file written before it and of no directory. (The
        # fallback, an fsync of each of paths, is the same here: paths are
        # all the files the batch wrote.)
        super().sync_files(within, paths)
        self._log(Call("syncfs", self.rel(within)))


# ---------------------------------------------------------------- the model


@dataclass
class Snapshot:
    """The durable state before the operation: names, inodes and contents."""

    dirs: list[str]
    names: dict[str, int]
    contents: dict[int, bytes]
    st_ino: dict[int, int]  # st_ino on the recorded spool -> node


def snapshot(root: StrPath) -> Snapshot:
    """Read every directory and file under root (UNTRACKED aside)."""
    base = Path(root)
    snap = Snapshot(dirs=[], names={}, contents={}, st_ino={})
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not _untracked(base, Path(dirpath) / d))
        for d in dirnames:
            snap.dirs.append((Path(dirpath) / d).relative_to(base).as_posix())
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if _untracked(base, path):
                continue
            ino = path.lstat().st_ino
            node = snap.st_ino.setdefault(ino, len(snap.st_ino))
            snap.contents.setdefault(node, path.read_bytes())
            snap.names[path.relative_to(base).as_posix()] = node
    return snap


def _untracked(base: Path, path: Path) -> bool:
    return path.relative_to(base).as_posix().startswith(UNTRACKED)


@dataclass(frozen=True)
class Step:
    """A logged call bound to the model's node (inode) it concerns."""

    index: int
    call: Call
    node: int
    dirs: frozenset[str]  # directories whose entries it changes


def bind(snap: Snapshot, calls: Iterable[Call]) -> list[Step]:
    """Give each call its node; a create always makes a new node (inode numbers recycle)."""
    nodes = dict(snap.st_ino)
    next_node = len(snap.contents)
    steps = []
    for i, call in enumerate(calls):
        if call.kind == "create":
            nodes[call.ino] = next_node
            next_node += 1
        node = nodes.get(call.ino, -1)
        steps.append(Step(i, call, node, _changed_dirs(call)))
    return steps


def _changed_dirs(call: Call) -> frozenset[str]:
    if call.kind == "link":
        return frozenset({posixpath.dirname(call.dst)})
    if call.kind == "rename":
        return frozenset({posixpath.dirname(call.path), posixpath.dirname(call.dst)})
    if call.kind in DIR_CHANGES:
        return frozenset({posixpath.dirname(call.path)})
    return frozenset()


@dataclass(frozen=True)
class DiskState:
    """One possible disk after a crash: (path, link group, content) sorted by path."""

    k: int
    files: tuple[tuple[str, int, bytes], ...]

    @property
    def key(self) -> tuple[tuple[str, int, bytes], ...]:
        return self.files

    def paths(self) -> dict[str, bytes]:
        return {p: c for p, _g, c in self.files}


@dataclass
class CrashPoint:
    """What a power loss after the first k calls may leave behind."""

    k: int
    states: list[DiskState]
    unsynced: int  # directory changes that may or may not have reached the disk
    sampled: bool  # True when the subsets were sampled, not all enumerated


@dataclass
class _Progress:
    """The model after replaying calls[:k]: pinned and free changes, durable contents."""

    durable: dict[int, bytes | None] = field(default_factory=dict)
    written: dict[int, bytes] = field(default_factory=dict)
    unsynced_dirs: dict[int, set[str]] = field(default_factory=dict)
    changes: list[Step] = field(default_factory=list)


def _replay(snap: Snapshot, steps: list[Step]) -> _Progress:
    prog = _Progress(durable=dict(snap.contents), written=dict(snap.contents))
    for step in steps:
        call = step.call
        if call.kind == "create":
            prog.durable[step.node] = None
            prog.written[step.node] = call.data
        elif call.kind == "fsync_file":
            prog.durable[step.node] = prog.written.get(step.node, b"")
        elif call.kind == "syncfs":
            # Every content written so far, and no name: the entries still wait
            # for their directories' fsyncs (the conservative reading).
            prog.durable.update(prog.written)
        elif call.kind == "fsync_dir":
            for waiting in prog.unsynced_dirs.values():
                waiting.discard(call.path)
        if step.dirs:
            prog.changes.append(step)
            prog.unsynced_dirs[step.index] = set(step.dirs)
    return prog


def _apply(names: dict[str, int], step: Step) -> None:
    call = step.call
    if call.kind == "create":
        names[call.path] = step.node
    elif call.kind == "link":
        names[call.dst] = step.node
    elif call.kind == "rename":
        if names.get(call.path) == step.node:
            del names[call.path]
        names[call.dst] = step.node
    elif call.kind == "unlink" and names.get(call.path) == step.node:
        del names[call.path]


def _subsets(free: list[int], rng: random.Random) -> tuple[list[frozenset[int]], bool]:
    if len(free) <= MAX_EXACT_BITS:
        combos = itertools.chain.from_iterable(
            itertools.combinations(free, r) for r in range(len(free) + 1)
        )
        return [frozenset(c) for c in combos], False
    picked = {frozenset(), frozenset(free)}
    while len(picked) < SAMPLED_SUBSETS:
        picked.add(frozenset(i for i in free if rng.random() < 0.5))
    return sorted(picked, key=sorted), True


def _variants(data: bytes) -> list[bytes]:
    """What a name may show of content that was never fsynced."""
    return list(dict.fromkeys([b"", data[: len(data) // 2], data]))


def _contents(nodes: list[int], prog: _Progress, rng: random.Random) -> Iterator[dict[int, bytes]]:
    choices = []
    for node in nodes:
        durable = prog.durable.get(node)
        if durable is None:
            choices.append(_variants(prog.written.get(node, b"")))
        else:
            choices.append([durable])
    combos = list(itertools.product(*choices))
    if len(combos) > MAX_CONTENT_VARIANTS:
        combos = rng.sample(combos, MAX_CONTENT_VARIANTS)
    for combo in combos:
        yield dict(zip(nodes, combo, strict=True))


def _state(k: int, names: dict[str, int], content: dict[int, bytes]) -> DiskState:
    groups: dict[int, int] = {}
    files = []
    for path in sorted(names):
        node = names[path]
        group = groups.setdefault(node, len(groups))
        files.append((path, group, content[node]))
    return DiskState(k, tuple(files))


def crash_point(snap: Snapshot, steps: list[Step], k: int, rng: random.Random) -> CrashPoint:
    """Every distinct state a power loss right after steps[:k] may leave."""
    prog = _replay(snap, steps[:k])
    pinned = {i for i, waiting in prog.unsynced_dirs.items() if not waiting}
    free = [s.index for s in prog.changes if s.index not in pinned]
    subsets, sampled = _subsets(free, rng)
    seen: dict[tuple[tuple[str, int, bytes], ...], DiskState] = {}
    for chosen in subsets:
        names = dict(snap.names)
        for step in prog.changes:
            if step.index in pinned or step.index in chosen:
                _apply(names, step)
        nodes = sorted(set(names.values()))
        for content in _contents(nodes, prog, rng):
            state = _state(k, names, content)
            seen.setdefault(state.key, state)
    return CrashPoint(k, list(seen.values()), len(free), sampled)


def crash_states(snap: Snapshot, calls: list[Call], seed: int) -> list[CrashPoint]:
    """Crash points 0..len(calls), each with its possible states."""
    rng = random.Random(seed)
    steps = bind(snap, calls)
    return [crash_point(snap, steps, k, rng) for k in range(len(calls) + 1)]


def final_state(snap: Snapshot, calls: list[Call]) -> dict[str, bytes]:
    """The state with every call persisted: what the live filesystem shows."""
    names = dict(snap.names)
    written = dict(snap.contents)
    for step in bind(snap, calls):
        if step.call.kind == "create":
            written[step.node] = step.call.data
        _apply(names, step)
    return {path: written[node] for path, node in names.items()}


def live_files(root: StrPath) -> dict[str, bytes]:
    """Every tracked file under root with its bytes, by relative path."""
    snap = snapshot(root)
    return {path: snap.contents[node] for path, node in snap.names.items()}


def materialise(state: DiskState, dirs: Iterable[str], dest: StrPath, mtime: float) -> None:
    """Write state as real files under dest (names of one group are hard links)."""
    base = Path(dest)
    base.mkdir(parents=True, exist_ok=True)
    for d in dirs:
        (base / d).mkdir(parents=True, exist_ok=True)
    first: dict[int, Path] = {}
    for rel, group, content in state.files:
        path = base / rel
        if group in first:
            os.link(first[group], path)
            continue
        path.write_bytes(content)
        os.utime(path, (mtime, mtime))
        first[group] = path
