"""Job list queries: filter by status and job name, search, sort, paginate.

Owns turning a :class:`JobQuery` into one page of jobs. Which names match,
and in which order, is decided from the index alone (directory listings and
rows); only the files on the requested page are then opened, through
``Spool.view``, so a page costs the same with 100 or 100,000 jobs on disk.

Invariants:
* Ids sort by submission time, so "newest" and "oldest" need no row data: an
  unfiltered list is a merge of the sorted listings and works before the
  index has read a single file.
* While the index is still reading files, a filtered or searched result is
  flagged ``partial``: rows not read yet cannot match a job-name filter.
* A job that moved between listing and reading is left off its page rather
  than shown with a status it no longer has.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from jobspool.dashboard.index import JobIndex
from jobspool.dashboard.stats import Row
from jobspool.model import NAME_PATTERN, JobView
from jobspool.names import job_id_of
from jobspool.spool import Spool
from jobspool.states import Status

SORTS = ("newest", "oldest", "finished", "duration")
PER_PAGE = (20, 50, 100, 200)
MAX_QUERY = 200
Ref = tuple[str, Status]  # (file name, status)


class BadQueryError(ValueError):
    """A query parameter that cannot be understood (shown to the user)."""


def _int(value: str, name: str, default: int) -> int:
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadQueryError(f"{name} must be a whole number") from None


@dataclass(frozen=True)
class JobQuery:
    status: Status | None = None  # None: every status
    job: str = ""
    q: str = ""
    sort: str = "newest"
    page: int = 1
    per_page: int = 50

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> JobQuery:
        status_text = params.get("status", "") or "all"
        status = None
        if status_text != "all":
            try:
                status = Status(status_text)
            except ValueError:
                raise BadQueryError(f"unknown status {status_text[:40]!r}") from None
        job = params.get("job", "").strip()
        if job and not NAME_PATTERN.fullmatch(job):
            raise BadQueryError("job must be a job name from the allow-list")
        sort = params.get("sort", "") or "newest"
        if sort not in SORTS:
            raise BadQueryError(f"sort must be one of {', '.join(SORTS)}")
        per_page = _int(params.get("per_page", ""), "per_page", 50)
        if per_page not in PER_PAGE:
            raise BadQueryError(f"per_page must be one of {', '.join(map(str, PER_PAGE))}")
        page = max(1, min(_int(params.get("page", ""), "page", 1), 10_000_000))
        q = "".join(c for c in params.get("q", "") if c.isprintable()).strip()[:MAX_QUERY]
        return cls(status=status, job=job, q=q, sort=sort, page=page, per_page=per_page)

    @property
    def filtered(self) -> bool:
        return bool(self.job or self.q)

    def params(self, **changes: object) -> dict[str, str]:
        """Query-string parameters for links (defaults left out)."""
        query = replace(self, **changes)  # type: ignore[arg-type]
        out = {
            "status": query.status.value if query.status else "",
            "job": query.job,
            "q": query.q,
            "sort": "" if query.sort == "newest" else query.sort,
            "page": "" if query.page == 1 else str(query.page),
            "per_page": "" if query.per_page == 50 else str(query.per_page),
        }
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class JobPage:
    query: JobQuery
    views: list[JobView]
    total: int
    partial: bool

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))


def _refs(index: JobIndex, status: Status, newest_first: bool) -> Iterator[Ref]:
    names = index.ordered(status)
    for name in reversed(names) if newest_first else names:
        yield name, status


class _Columns:
    """One status prepared for filtering at C speed.

    Names and search texts are each joined into one string, so a search is a
    handful of ``str.find`` calls over a few megabytes instead of a Python
    test per job; ``starts`` maps a match position back to its job.
    """

    def __init__(self, version: int, names: list[str], rows: list[Row | None]) -> None:
        self.version = version
        self.names = names
        self.rows = rows
        self.jobs = [r.job if r is not None else "" for r in rows]
        joined = SEP.join(names)
        # Lower-casing keeps positions only for ASCII; ids outside pending/ always are.
        self.name_hay = joined.lower() if joined.isascii() else SEP.join(n.lower() for n in names)
        self.name_starts = _starts(names)
        texts = [r.text if r is not None else "" for r in rows]
        self.text_hay = SEP.join(texts)
        self.text_starts = _starts(texts)

    def search(self, needle: str) -> list[int]:
        hits = set(_find_all(self.name_hay, self.name_starts, needle))
        hits.update(_find_all(self.text_hay, self.text_starts, needle))
        return sorted(hits)


SEP = "\x00"


def _starts(parts: list[str]) -> array[int]:
    """Where each part starts in SEP.join(parts) (8 bytes each, not a Python int each)."""
    starts = array("q", [0])
    starts.extend(itertools.accumulate(len(p) + 1 for p in parts[:-1]))
    return starts if parts else array("q")


def _find_all(hay: str, starts: array[int], needle: str) -> Iterator[int]:
    """Indexes of the parts containing needle (each once, ascending)."""
    count = len(starts)
    pos = hay.find(needle)
    while pos >= 0:
        index = bisect.bisect_right(starts, pos) - 1
        yield index
        if index + 1 >= count:
            return
        pos = hay.find(needle, starts[index + 1])


def _columns(index: JobIndex, status: Status) -> _Columns:
    version, names, rows = index.snapshot(status)
    return _Columns(version, names, rows)


class JobFinder:
    """Runs queries against one index, with small caches keyed by index versions."""

    def __init__(self, index: JobIndex, spool: Spool, cache_size: int = 8) -> None:
        self.index = index
        self.spool = spool
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[object, ...], list[Ref]] = OrderedDict()
        self._columns: dict[Status, _Columns] = {}
        self._lock = threading.Lock()

    def statuses(self, query: JobQuery) -> list[Status]:
        return [query.status] if query.status else list(Status)

    def find(self, query: JobQuery) -> JobPage:
        statuses = self.statuses(query)
        start = (query.page - 1) * query.per_page
        partial = False
        if not query.filtered and query.sort in ("newest", "oldest"):
            newest = query.sort == "newest"
            total = sum(self.index.count(s) for s in statuses)
            refs = self._page_unfiltered(statuses, newest, start, query.per_page)
        else:
            partial = not all(self.index.complete(s) for s in statuses)
            matches = self.matches(query)
            total = len(matches)
            refs = matches[start : start + query.per_page]
        views = [v for name, status in refs if (v := self.spool.view(status, name)) is not None]
        return JobPage(query=query, views=views, total=total, partial=partial)

    def _page_unfiltered(
        self, statuses: list[Status], newest: bool, start: int, size: int
    ) -> list[Ref]:
        if len(statuses) == 1:
            status = statuses[0]
            names = self.index.ordered(status)
            if newest:
                stop = max(0, len(names) - start)
                chosen = names[max(0, stop - size) : stop][::-1]
            else:
                chosen = names[start : start + size]
            return [(name, status) for name in chosen]
        merged = heapq.merge(*(_refs(self.index, s, newest) for s in statuses), reverse=newest)
        return list(itertools.islice(merged, start, start + size))

    def _cols(self, status: Status) -> _Columns:
        with self._lock:
            cols = self._columns.get(status)
        if cols is None or cols.version != self.index.version(status):
            cols = _columns(self.index, status)
            with self._lock:
                self._columns[status] = cols
        return cols

    def matches(self, query: JobQuery) -> list[Ref]:
        """Every (name, status) matching the filter, in the query's order."""
        statuses = self.statuses(query)
        versions = tuple(self.index.version(s) for s in statuses)
        key = (versions, tuple(statuses), query.job, query.q, query.sort)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        found = self._compute(query, statuses)
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def _compute(self, query: JobQuery, statuses: list[Status]) -> list[Ref]:
        job = query.job
        needle = query.q.lower()
        found: list[tuple[Any, str, Status]] = []
        for status in statuses:
            cols = self._cols(status)
            keep: Iterable[int] = cols.search(needle) if needle else range(len(cols.names))
            if job:
                jobs = cols.jobs
                keep = [i for i in keep if jobs[i] == job]
            names, rows = cols.names, cols.rows
            if query.sort == "finished":
                found.extend((_when(rows[i]), names[i], status) for i in keep)
            elif query.sort == "duration":
                found.extend((_duration(rows[i]), names[i], status) for i in keep)
            elif len(statuses) == 1:
                # One status is already in id order: no sort needed.
                refs = [(names[i], status) for i in keep]
                return refs[::-1] if query.sort == "newest" else refs
            else:
                found.extend((names[i], names[i], status) for i in keep)
        # Each status is already in order, so this sort mostly merges sorted runs.
        found.sort(key=lambda item: item[0], reverse=query.sort != "oldest")
        return [(name, status) for _key, name, status in found]


def _when(row: Row | None) -> float:
    return row.when if row is not None else 0.0


def _duration(row: Row | None) -> float:
    return row.duration if row is not None else -1.0


def job_id(ref: Ref) -> str:
    return job_id_of(ref[1], ref[0])
