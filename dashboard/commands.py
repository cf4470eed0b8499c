"""The ``jobspool dashboard`` and ``jobspool up`` commands.

Owns the command-line surface of the dashboard: :func:`register` adds both
subcommands to the ``jobspool`` argparse parser. ``dashboard`` serves the web
UI; ``up`` runs a runner and the dashboard in one process (the quick start),
the runner in the main thread because it owns the signal handlers.

Shutdown: Ctrl-C or SIGTERM stops both. Under ``up`` the runner handles the
signal as it always does (stop claiming, let running attempts finish within
``grace_seconds``, a second Ctrl-C hands them back at once); when it returns,
the web server and the index thread are stopped and the process exits.

Both load the config as every command does: with no ``--config`` and no
``allowed_jobs.yaml`` here or in a parent directory they stop with one line
instead of serving a default spool, and at start they print which config
file and spool they use. A mistake (bad config, unsafe bind, busy port, a directory that is not a
spool) ends with one line on stderr and exit status 2, like every jobspool
command. ``up`` initialises the project's own spool when it does not exist
at all, and says so; both refuse any other directory without the spool's
marker (:mod:`jobspool.sentinel`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from jobspool.config import Config, load_config
from jobspool.dashboard.security import TOKEN_ENV, SecurityConfigError, check_bind, load_token
from jobspool.errors import JobspoolError
from jobspool.initspool import init_fresh_project_spool

if TYPE_CHECKING:
    from jobspool.dashboard.server import DashboardServer
    from jobspool.dashboard.state import Dashboard

EXIT_USAGE = 2
DEFAULT_PORT = 8000


def _location(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        help="allowed_jobs.yaml to use (default: the one here or in the nearest parent)",
    )
    p.add_argument("--spool", help="spool directory (overrides the config)")


def _web_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other needs a token)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    p.add_argument("--token", help=f"access token (prefer ${TOKEN_ENV} or --token-file)")
    p.add_argument("--token-file", help="read the access token from this file")
    p.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    p.add_argument(
        "--index-limit",
        type=int,
        default=200_000,
        help="jobs per status kept in the in-memory index (default 200000)",
    )
    p.add_argument(
        "--refresh", type=float, default=1.0, help="seconds between index refreshes (default 1)"
    )


def register(subparsers: Any) -> None:
    """Add ``dashboard`` and ``up`` to the jobspool command parser."""
    d = subparsers.add_parser("dashboard", help="serve the web dashboard")
    _location(d)
    _web_flags(d)
    d.set_defaults(func=cmd_dashboard)

    u = subparsers.add_parser("up", help="run a runner and the dashboard together")
    _location(u)
    _web_flags(u)
    u.add_argument("--workers", type=int, help="attempts run at once")
    u.add_argument("--quiet", action="store_true", help="no runner log lines on stderr")
    u.set_defaults(func=cmd_up)


def _fail(message: str) -> int:
    print(f"jobspool: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _prepare(
    args: argparse.Namespace, overrides: dict[str, Any], *, init_fresh: bool = False
) -> tuple[Config, Dashboard, DashboardServer]:
    # Imported here: every jobspool command builds this parser, and only
    # these two need Bottle and the web server.
    from jobspool.dashboard.app import create_app
    from jobspool.dashboard.server import DashboardServer
    from jobspool.dashboard.state import Dashboard

    if args.threads < 1 or args.index_limit < 1 or args.refresh <= 0:
        raise SecurityConfigError("--threads, --index-limit and --refresh must be positive")
    config = load_config(args.config, overrides)
    token = load_token(args.token, args.token_file, os.environ)
    check_bind(args.host, token)
    if init_fresh:
        _init_fresh_spool(config)
    dash = Dashboard(
        config,
        token=token,
        bound_host=args.host,
        overrides=overrides,
        index_limit=args.index_limit,
        refresh_seconds=args.refresh,
    )
    try:
        server = DashboardServer(create_app(dash), args.host, args.port, threads=args.threads)
    except OSError as exc:
        raise SecurityConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    return config, dash, server


def _init_fresh_spool(config: Config) -> None:
    """The quick start: a project's own spool that does not exist yet is
    initialised as `jobspool init` would, and said so; anything else must
    carry its marker (an unmounted path is refused, never created)."""
    options = {"log_dir": config.log_dir, "durable": config.settings.durable}
    if init_fresh_project_spool(config.spool_dir, config.path, **options):
        print(
            f"spool: {config.spool_dir} did not exist; initialised it (jobspool init)", flush=True
        )


def _announce(server: DashboardServer, dash: Dashboard) -> None:
    lock = "token required" if dash.guard.token_required else "no token: loopback only"
    print(f"jobspool dashboard: {server.url}  ({lock})", flush=True)
    print(f"config: {dash.config.path}, spool: {dash.spool.root}", flush=True)


def cmd_dashboard(args: argparse.Namespace) -> int:
    try:
        _config, dash, server = _prepare(args, {"spool": args.spool})
    except (JobspoolError, SecurityConfigError) as exc:
        return _fail(str(exc))

    def stop(_signum: int, _frame: object) -> None:
        server.stop()

    previous = {sig: signal.signal(sig, stop) for sig in _stop_signals()}
    try:
        dash.start()
        _announce(server, dash)
        server.serve()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        dash.stop()
    print("jobspool dashboard: stopped", flush=True)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from jobspool.daemon import Runner

    overrides: dict[str, Any] = {"spool": args.spool, "workers": args.workers}
    try:
        config, dash, server = _prepare(args, overrides, init_fresh=True)
        runner = Runner(config, overrides=overrides, console=not args.quiet)
    except (JobspoolError, SecurityConfigError) as exc:
        return _fail(str(exc))
    dash.start()
    server.start_thread()
    _announce(server, dash)
    print(
        f"runner: {runner.runner_id} ({config.settings.workers} workers); Ctrl-C stops both",
        flush=True,
    )
    try:
        code = runner.run()
    finally:
        server.stop()
        dash.stop()
    print("jobspool up: stopped", flush=True)
    return code


def _stop_signals() -> list[signal.Signals]:
    sigs = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl-Break
        sigs.append(signal.SIGBREAK)
    return sigs
