"""Serving the dashboard with waitress: start, serve, stop cleanly, on any OS.

Owns the listening socket and the server's threads. waitress is a real
multi-threaded WSGI server that runs on Linux, macOS and Windows; its event
loop runs here one poll at a time, so :meth:`DashboardServer.stop` (callable
from any thread or a signal handler) takes effect within one poll.

Invariants:
* The socket is bound in the constructor, so a busy port fails before
  anything else starts, and port 0 gets an OS-chosen free port whose number
  is known at once (``port``, ``url``).
* Stopping closes the listening socket first, lets requests in flight finish
  for up to ``grace`` seconds, then stops every worker thread and closes
  every connection: after :meth:`stop` returns, no server thread is left.
* waitress answers a request it cannot parse (400, 413...) without calling
  the app; those answers carry the app's security headers all the same.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

import waitress.server
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from jobspool.dashboard.security import WsgiApp, harden_headers

LOG = logging.getLogger("dashboard")


def resolve(host: str, port: int) -> str:
    """One address to bind for host (IPv4 first), so exactly one socket is opened."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host!r}: {exc}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


class _HardenedErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's own error answer, with the headers every app response has."""

    def execute(self) -> None:
        # Before the body: writing it sends the headers.
        self.response_headers.extend(harden_headers([]))
        super().execute()


class _HardenedChannel(HTTPChannel):  # type: ignore[misc]
    error_task_class = _HardenedErrorTask


class DashboardServer:
    def __init__(
        self,
        app: WsgiApp,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        threads: int = 8,
        grace: float = 3.0,
    ) -> None:
        self.host = host
        self.grace = grace
        address = resolve(host, port)
        self._server: Any = waitress.server.create_server(
            app,
            host=address,
            port=port,
            threads=threads,
            ident="jobspool",
            channel_timeout=60,
            connection_limit=200,
        )
        # The server makes one channel per connection from this class attribute.
        self._server.channel_class = _HardenedChannel
        self.port = int(self._server.effective_port)
        self.address = address
        self._map: dict[int, Any] = self._server._map
        self._stopping = threading.Event()
        self._serving = False
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.address if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/"

    def serve(self) -> None:
        """Serve in the calling thread until :meth:`stop` is called."""
        self._serving = True
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, use_poll=True, count=1)
        finally:
            self._shutdown()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve, name="jobspool-dashboard", daemon=True)
        self._serving = True  # before start: a stop() right after must wait for the loop
        thread.start()
        self._thread = thread
        return thread

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the loop to stop; wait for it when it runs in another thread."""
        self._stopping.set()
        if not self._serving:
            self._shutdown()  # bound but never served: release the socket and workers
            return
        with contextlib.suppress(OSError):  # already closed
            self._server.pull_trigger()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            self._thread = None

    def _busy(self) -> bool:
        for item in list(self._map.values()):
            if getattr(item, "requests", None) or getattr(item, "total_outbufs_len", 0):
                return True
        return False

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        server = self._server
        server.accepting = False
        # Close only the listening socket; the trigger must keep waking the
        # loop while workers finish the requests already accepted.
        wasyncore.dispatcher.close(server)
        deadline = time.monotonic() + self.grace
        while self._busy() and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=self.grace)
        for item in list(self._map.values()):
            try:
                item.close()
            except OSError:
                LOG.debug("closing %r failed", item, exc_info=True)
        self._map.clear()
