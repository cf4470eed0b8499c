"""The jobspool web dashboard: see, search and steer every job in a spool.

A Bottle application (:func:`jobspool.dashboard.app.create_app`) over a
:class:`jobspool.dashboard.state.Dashboard`, served by waitress
(:mod:`jobspool.dashboard.server`), started by ``jobspool dashboard`` or, together with
a runner, ``jobspool up`` (:mod:`jobspool.dashboard.commands`). It reads and changes
the spool only through ``jobspool.spool`` and ``jobspool.submit``. See
docs/DASHBOARD.md for the user's guide and the JSON API.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobspool.dashboard.app import create_app
    from jobspool.dashboard.state import Dashboard

__all__ = ["Dashboard", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: `jobspool runner` imports dashboard.commands for its parser and
    # should not pay for Bottle.
    if name == "create_app":
        from jobspool.dashboard.app import create_app

        return create_app
    if name == "Dashboard":
        from jobspool.dashboard.state import Dashboard

        return Dashboard
    raise AttributeError(f"module 'dashboard' has no attribute {name!r}")
