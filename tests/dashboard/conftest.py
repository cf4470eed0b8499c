"""Fixtures of the dashboard tests; the helpers they build on are in support.py.

Each fixture works on the test's own spool (the ``env`` fixture of
tests/conftest.py): ``spool`` opens it as the runner would, ``client`` is an
in-process browser-like client of a dashboard over it (no token, no
background index), ``server`` the real waitress server on an OS-chosen port,
and ``page`` a fresh headless Chromium page.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from jobspool.spool import Spool
from tests.conftest import SpoolEnv
from tests.dashboard.support import (
    Client,
    LiveServer,
    browser_page,
    client_for,
    live_server,
    make_dashboard,
    spool_of,
)


@pytest.fixture
def spool(env: SpoolEnv) -> Spool:
    return spool_of(env)


@pytest.fixture
def client(env: SpoolEnv) -> Client:
    return client_for(make_dashboard(env))


@pytest.fixture
def server(env: SpoolEnv) -> Iterator[LiveServer]:
    with live_server(env) as running:
        yield running


@pytest.fixture
def page() -> Iterator[Page]:
    with browser_page() as opened:
        yield opened
