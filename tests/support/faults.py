"""Fault injection through the spool's FileOps, and an in-process runner driver.

Every FileOps operation first calls :meth:`HookedOps.before` with its name and
the paths involved (for write/fsync/close: the file being written by the
enclosing write_new). Subclasses decide there whether to raise a real
OSError with a chosen errno; otherwise the real system call runs. Nothing is
mocked: the files are real, only the failure is chosen.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from jobspool.daemon import Runner
from jobspool.fsops import FileOps, StrPath
from jobspool.messages import StopRequested


def fault(code: int, path: str = "") -> OSError:
    """The OSError the kernel would raise for code."""
    return OSError(code, os.strerror(code), path) if path else OSError(code, os.strerror(code))


class HookedOps(FileOps):
    """FileOps whose every operation passes through :meth:`before` first."""

    def __init__(self) -> None:
        self._writing = threading.local()
        self.lock = threading.Lock()

    def before(self, op: str, *paths: str) -> None:
        """Called before each operation; raise an OSError to fail it."""

    def _current(self) -> str:
        path: str = getattr(self._writing, "path", "")
        return path

    def write_new(self, path: StrPath, data: bytes, *, durable: bool) -> None:
        self.before("write_new", os.fspath(path))
        self._writing.path = os.fspath(path)
        try:
            super().write_new(path, data, durable=durable)
        finally:
            self._writing.path = ""

    def write(self, fd: int, data: memoryview) -> int:
        self.before("write", self._current())
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self.before("fsync", self._current())
        super().fsync(fd)

    def close(self, fd: int) -> None:
        try:
            self.before("close", self._current())
        except OSError:
            # Linux releases the descriptor even when close reports an error.
            os.close(fd)
            raise
        super().close(fd)

    def read_regular_stat(
        self, path: StrPath, limit: int, *, single_link: bool = False
    ) -> tuple[bytes, os.stat_result]:
        self.before("read_regular", os.fspath(path))
        return super().read_regular_stat(path, limit, single_link=single_link)

    def rename(self, src: StrPath, dst: StrPath) -> None:
        self.before("rename", os.fspath(src), os.fspath(dst))
        super().rename(src, dst)

    def replace(self, src: StrPath, dst: StrPath) -> None:
        self.before("replace", os.fspath(src), os.fspath(dst))
        super().replace(src, dst)

    def link(self, src: StrPath, dst: StrPath) -> None:
        self.before("link", os.fspath(src), os.fspath(dst))
        super().link(src, dst)

    def unlink(self, path: StrPath) -> None:
        self.before("unlink", os.fspath(path))
        super().unlink(path)

    def unlink_quiet(self, path: StrPath) -> None:
        self.before("unlink_quiet", os.fspath(path))
        super().unlink_quiet(path)

    def sync_files(self, within: StrPath, paths: Sequence[StrPath]) -> None:
        self.before("sync_files", os.fspath(within))
        super().sync_files(within, paths)

    def fsync_dir(self, path: StrPath) -> None:
        self.before("fsync_dir", os.fspath(path))
        super().fsync_dir(path)

    def mkdir(self, path: StrPath) -> None:
        self.before("mkdir", os.fspath(path))
        super().mkdir(path)

    def scandir_names(self, path: StrPath) -> list[str]:
        self.before("scandir_names", os.fspath(path))
        return super().scandir_names(path)


class CallRecorder(HookedOps):
    """Records (operation, paths) of every call, in order; fails nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def before(self, op: str, *paths: str) -> None:
        with self.lock:
            self.calls.append((op, paths))


class FailNthCall(HookedOps):
    """Fails the nth call (1-based, counting every operation) with code, once."""

    def __init__(self, nth: int, code: int) -> None:
        super().__init__()
        self.nth = nth
        self.code = code
        self.count = 0
        self.failed: tuple[str, tuple[str, ...]] | None = None

    def before(self, op: str, *paths: str) -> None:
        with self.lock:
            self.count += 1
            if self.count != self.nth:
                return
            self.failed = (op, paths)
        raise fault(self.code, paths[-1] if paths else "")


Matcher = Callable[[str, tuple[str, ...]], bool]


@dataclass
class Hit:
    """One failed call: when (monotonic) and what."""

    at: float
    op: str
    paths: tuple[str, ...]


@dataclass
class FirstCallsFail(HookedOps):
    """Fails the first ``times`` calls that ``matches`` selects, then lets all through.

    ``observe`` (optional) runs before every call that ``matches`` selects,
    failed or not, so a test can look at the spool at those moments.
    """

    matches: Matcher
    code: int
    times: int
    observe: Callable[[str, tuple[str, ...]], None] | None = None
    hits: list[Hit] = field(default_factory=list)
    passed: int = 0

    def __post_init__(self) -> None:
        super().__init__()

    def before(self, op: str, *paths: str) -> None:
        if not self.matches(op, paths):
            return
        if self.observe is not None:
            self.observe(op, paths)
        with self.lock:
            if len(self.hits) >= self.times:
                self.passed += 1
                return
            self.hits.append(Hit(time.monotonic(), op, paths))
        raise fault(self.code, paths[-1] if paths else "")


def in_dir(path: str, folder: str) -> bool:
    return os.path.dirname(os.path.abspath(path)) == os.path.abspath(folder)


class PauseAt(HookedOps):
    """Holds the first ``op`` whose first path lies in a folder named
    ``folder`` until :attr:`go` is set, after setting :attr:`reached`: a
    deterministic interleaving of two actors at a named step."""

    def __init__(self, op: str, folder: str) -> None:
        super().__init__()
        self.op, self.folder = op, folder
        self.reached, self.go = threading.Event(), threading.Event()

    def before(self, op: str, *paths: str) -> None:
        if self.reached.is_set() or op != self.op or not paths:
            return
        if os.path.basename(os.path.dirname(paths[0])) == self.folder:
            self.reached.set()
            if not self.go.wait(30):
                raise AssertionError(f"{op} was held for 30 s")


class KillAt(HookedOps):
    """A crash point: SIGKILLs its own process just before the first ``op``
    whose last path lies in a folder named ``folder`` (e.g. the link into
    pending/ that publishes a job), so nothing after that point runs."""

    def __init__(self, op: str, folder: str) -> None:
        super().__init__()
        self.op, self.folder = op, folder

    def before(self, op: str, *paths: str) -> None:
        if op == self.op and paths and os.path.basename(os.path.dirname(paths[-1])) == self.folder:
            os.kill(os.getpid(), signal.SIGKILL)


class RunnerThread:
    """Runs Runner.run() on a thread of this process; bounded join.

    On a thread the runner installs no signal handlers, so the test process
    keeps its own; a stop is requested through the runner's event queue.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.result: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="test-runner", daemon=True)

    def _main(self) -> None:
        try:
            self.result = self.runner.run()
        except BaseException as exc:  # reported to the test by join()
            self.error = exc

    def start(self) -> RunnerThread:
        self.thread.start()
        return self

    def join(self, timeout: float) -> int:
        """Wait for run() to return; stop it and fail if it takes longer than timeout."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.runner.events.put(StopRequested(signal.SIGTERM))
            self.runner.events.put(StopRequested(signal.SIGTERM))
            self.thread.join(60)
            raise AssertionError(f"the in-process runner was still running after {timeout}s")
        if self.error is not None:
            raise AssertionError(
                f"the runner raised {type(self.error).__name__}: {self.error}"
            ) from self.error
        assert self.result is not None
        return self.result


ERRNOS = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO}
