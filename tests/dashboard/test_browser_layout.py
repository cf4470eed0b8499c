"""Every page of the dashboard fits the screen, at phone width and at desktop width.

Real Chromium (as in test_browser_dashboard.py) over a spool holding one job
of each kind (``every_kind_of_job``). For each page and width: the page
never scrolls sideways (``scrollWidth <= innerWidth`` for the document and
the body; wide tables scroll inside their own wrapper instead), error text
keeps a readable width (a cell that wrapped one letter per line was a few
pixels wide), and the charts' tick labels are real-size text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.conftest import SpoolEnv
from tests.dashboard.support import browser_page, every_kind_of_job, live_server, spool_of

WIDTHS = [400, 1280]
TOKEN = "layout-test-token"
# page name -> path; {kind} is the id of that kind of job (every_kind_of_job)
PAGES = {
    "overview": "/",
    "jobs": "/jobs",
    "jobs-failed": "/jobs?status=failed",
    "jobs-filtered": "/jobs?status=failed&job=Failing&q=upstream",
    "jobs-pending": "/jobs?status=pending&sort=oldest",
    "job-pending": "/jobs/{pending}",
    "job-scheduled": "/jobs/{scheduled}",
    "job-retrying": "/jobs/{retrying}",
    "job-running": "/jobs/{running}",
    "job-completed": "/jobs/{completed}",
    "job-failed": "/jobs/{failed}",
    "job-rejected": "/jobs/{rejected}",
    "job-cancelled": "/jobs/{cancelled}",
    "resubmit-form": "/jobs/{rejected}/resubmit",
    "submit": "/submit",
    "schedules": "/schedules",
    "error": "/jobs/no-such-job",
    "log": "/jobs/{completed}/log",
    "login": "/login",
}
MIN_ERROR_CELL_PX = 120  # one letter per line was under 20 px


@pytest.fixture
def ids(env: SpoolEnv) -> dict[str, str]:
    return every_kind_of_job(spool_of(env))


@contextmanager
def opened(env: SpoolEnv, width: int, name: str, ids: dict[str, str]) -> Iterator[Page]:
    token = TOKEN if name == "login" else None
    with live_server(env, token) as server, browser_page((width, 900)) as page:
        response = page.goto(server.url.rstrip("/") + PAGES[name].format(**ids))
        assert response is not None
        expected = 404 if name == "error" else 200
        assert response.status == expected, f"{name}: HTTP {response.status}"
        yield page


def overflow(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(
        """() => ({
            inner: window.innerWidth,
            doc: document.documentElement.scrollWidth,
            body: document.body ? document.body.scrollWidth : 0,
            wide: Array.from(document.querySelectorAll('body *'))
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                             && !e.closest('.table-wrap'))
                .slice(0, 5)
                .map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right),
        })"""
    )
    return found


def error_cells(page: Page) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('td.err, td.note'))
            .filter(td => td.textContent.trim())
            .map(td => ({text: td.textContent.trim().slice(0, 40),
                         width: td.getBoundingClientRect().width}))"""
    )
    return cells


@pytest.mark.parametrize("name", list(PAGES))
@pytest.mark.parametrize("width", WIDTHS)
def test_page_fits_the_screen(env: SpoolEnv, ids: dict[str, str], width: int, name: str) -> None:
    with opened(env, width, name, ids) as page:
        found = overflow(page)
        assert found["doc"] <= found["inner"], f"{name} at {width}px scrolls sideways: {found}"
        assert found["body"] <= found["inner"], f"{name} at {width}px: body too wide: {found}"
        assert not found["wide"], f"{name} at {width}px: elements past the edge: {found['wide']}"
        for cell in error_cells(page):
            assert cell["width"] >= MIN_ERROR_CELL_PX, f"{name} at {width}px: narrow cell {cell}"
        if width >= 1280 and name.startswith("jobs"):
            # On a desktop the list fits as it is: nothing hides behind a scrollbar.
            scroll = page.evaluate(
                """() => Array.from(document.querySelectorAll('.table-wrap'))
                    .map(w => w.scrollWidth - w.clientWidth)"""
            )
            assert scroll and max(scroll) <= 0, f"{name}: the list scrolls sideways by {scroll}"


@pytest.mark.parametrize("width", WIDTHS)
def test_error_text_breaks_at_words_not_letters(
    env: SpoolEnv, ids: dict[str, str], width: int
) -> None:
    with opened(env, width, "jobs-failed", ids) as page:
        cell = page.locator("td.err").first
        box = cell.bounding_box()
        assert box is not None and box["width"] >= MIN_ERROR_CELL_PX
        # Whole words per line: the cell is far shorter than one line per letter.
        text = cell.text_content() or ""
        assert box["height"] < len(text) * 4, f"{box} for {len(text)} characters"


@pytest.mark.parametrize("width", WIDTHS)
def test_chart_labels_are_readable(env: SpoolEnv, ids: dict[str, str], width: int) -> None:
    with opened(env, width, "overview", ids) as page:
        heights: list[float] = page.evaluate(
            """() => Array.from(document.querySelectorAll('.chart .tick, .chart .peak'))
                .map(e => e.getBoundingClientRect().height)"""
        )
        assert heights, "the charts have tick labels"
        assert min(heights) >= 11, f"labels {heights} px high at {width}px"
        sizes: list[str] = page.evaluate(
            """() => Array.from(document.querySelectorAll('.chart .tick'))
                .map(e => getComputedStyle(e).fontSize)"""
        )
        assert all(float(s.removesuffix("px")) >= 11 for s in sizes), sizes
