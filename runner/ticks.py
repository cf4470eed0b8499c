"""Ticks in the spool: who queues a schedule's tick, exactly once, with no leader.

Owns ``schedules/<name>/`` in the spool: the claim files of each tick, their
done marks, their pruning, and the publication of a tick's job. The runner's
scheduling stage (:mod:`jobspool.stages.scheduling`) decides *which* ticks are
due (:mod:`jobspool.recurring`); this module settles each one on disk. The
CLI and the dashboard read schedules' state and queue a "run now" here too.

Files, for a tick at instant T (``STAMP`` = T in UTC, e.g. 20261207T023000Z):

* ``STAMP~0.claim``: the claim, created with a link that never replaces
  (written in tmp/, fsynced, linked, directory fsynced). Its content names
  the claimer with a random token, the job id the tick queues (or none, with
  the reason, when ``overlap: skip`` skipped it), the runner and host.
* ``STAMP~G.claim`` (G = 1, 2, ...): a repair's claim of the same tick, made
  the same way; the one repairer whose link succeeds publishes.
* ``STAMP.done``: the job is published (or the skip recorded); created the
  same way, never replaced.
* ``since``: when the schedule was first seen, by the first runner to look
  (created the same way; kept): ticks before it are never due, so a new
  schedule does not catch up the time before it existed, whichever runner
  looks first.

A tick is claimed once any claim name exists, settled once its done mark
exists. Its job's id is :func:`jobspool.recurring.tick_job_id` (schedule name
plus stamp), published with the spool's no-replace link into pending/.

Why no tick ever yields two jobs, crash point by crash point
------------------------------------------------------------
1. Before the claim's link: nothing is visible; the next runner claims.
2. The link of claim 0 succeeded: every other runner's link of the same name
   fails with EEXIST, so only one runner goes on. Over a network filesystem
   our own link may answer EEXIST when a retransmitted request found the name
   our first request made: the claim's token is read back and, when it is
   ours, the claim is ours.
3. Claimed, job not yet published (the claimer died, or its publication hit
   an I/O error): the claim stays without a done mark. A runner that sees it
   so for a whole lease on its own monotonic clock (never a wall clock across
   hosts) repairs it: it links claim G+1, and the one that wins publishes.
   The claimer itself publishes only within half a lease of its claim, on its
   own monotonic clock, so a claimer paused past that leaves the tick to the
   repair instead of racing it.
4. Before any publication (the claimer's or a repair's), the job's id is
   looked up in every status directory (twice: a job moving between two
   directories can slip past one look): a job that was published, ran and
   finished is never queued again. The publication itself is a link that
   never replaces, so two publishers racing into pending/ make one job.
5. Published, done mark not yet written: a repair finds the job (4) and only
   writes the mark.
6. Done: nothing is ever done again for the tick. The claim and its mark are
   kept until the tick can no longer be due on any runner (its age is past
   the schedule's catch_up plus ``PRUNE_MARGIN``, which covers clocks that
   disagree), so a tick is never claimed twice; the newest settled tick of a
   schedule is kept for its "last run" whatever its age. The done mark, not
   the job, says the tick is settled: a job removed by retention is never
   queued again.

What remains: a claimer paused for more than half a lease exactly between
its clock check and its link into pending/, while a repair published the job
and a runner took it out of pending/, would publish a second copy. Recovery
of a runner's attempts has the same exposure and the same bound (a runner
paused past its lease is fenced when it resumes).

Everything read here is untrusted: names must parse (stamp, generation),
files are read capped, with no link followed, and content is validated;
anything else is ignored and logged, never fatal.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobspool import logs
from jobspool.codec import json_bytes, parse_json
from jobspool.errors import Conflict, InvalidJobFile
from jobspool.model import Job, aware_time, is_valid_id
from jobspool.names import new_id
from jobspool.recurring import ScheduleSpec, parse_stamp, run_now_id, stamp, tick_job_id
from jobspool.spool import Spool
from jobspool.states import Status

FOLDER = "schedules"
CLAIM = ".claim"
DONE = ".done"
SINCE = "since"
GEN_SEP = "~"
CLAIM_MAX_BYTES = 4096
# Repairs of one tick; past this the tick is left alone and logged (bounded work).
MAX_GENERATIONS = 8
PRUNE_MARGIN = timedelta(hours=1)
QUEUED, SKIPPED = "queued", "skipped"


@dataclass(frozen=True)
class ClaimRecord:
    """What a claim file says."""

    schedule: str
    tick: datetime
    generation: int
    token: str
    job_id: str | None  # None: skipped (see reason)
    reason: str | None
    runner: str
    host: str

    def encode(self) -> bytes:
        return json_bytes(
            {
                "schedule": self.schedule,
                "tick": self.tick.isoformat(),
                "generation": self.generation,
                "token": self.token,
                "job": self.job_id,
                "reason": self.reason,
                "runner": self.runner,
                "host": self.host,
            }
        )


def _text(data: dict[str, Any], key: str, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > 512:
        raise ValueError(f"{key} is not a string")
    return value


def decode_claim(data: bytes) -> ClaimRecord:
    """The one decoder of claim files; ValueError saying what is wrong."""
    try:
        raw = parse_json(data)
    except (InvalidJobFile, ValueError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    generation = raw.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise ValueError("generation is not a count")
    job_id = _text(raw, "job", optional=True)
    if job_id is not None and not is_valid_id(job_id):
        raise ValueError("job is not a job id")
    return ClaimRecord(
        schedule=str(_text(raw, "schedule")),
        tick=aware_time(str(_text(raw, "tick"))),
        generation=generation,
        token=str(_text(raw, "token")),
        job_id=job_id,
        reason=_text(raw, "reason", optional=True),
        runner=str(_text(raw, "runner")),
        host=str(_text(raw, "host")),
    )


@dataclass
class TickFiles:
    """One tick's files as listed: its claims' generations, its done mark."""

    generations: set[int] = field(default_factory=set)
    done: bool = False


def parse_name(name: str) -> tuple[datetime, int | None] | None:
    """(tick, generation) for a claim name, (tick, None) for a done mark."""
    if name.endswith(DONE):
        tick = parse_stamp(name[: -len(DONE)])
        return None if tick is None else (tick, None)
    if not name.endswith(CLAIM):
        return None
    text, sep, gen = name[: -len(CLAIM)].partition(GEN_SEP)
    tick = parse_stamp(text)
    if tick is None or not sep or not gen.isdigit() or len(gen) > 3:
        return None
    return tick, int(gen)


class Ticks:
    """The schedules/ folder of one spool."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.root = spool.root / FOLDER

    # ------------------------------------------------------------ paths

    def folder(self, name: str, *, create: bool = True) -> Path:
        """schedules/<name>/, made when missing; a link there is refused."""
        path = self.root / name
        for part in (self.root, path):
            if part.is_symlink() or (part.exists() and not part.is_dir()):
                raise OSError(f"{part} is not a directory; refusing to use it")
            if create:
                self.spool.ops.mkdir(part)
        return path

    def since(self, name: str, now: datetime) -> datetime:
        """When the schedule was first seen in this spool (``now`` if by us):
        no tick before it is ever due. The first runner's link wins; every
        other runner reads its stamp."""
        path = self.folder(name) / SINCE
        self._create(path, stamp(now).encode(), "since")
        try:
            data, _st = self.spool.ops.read_regular_stat(path, CLAIM_MAX_BYTES)
        except OSError:
            return now
        found = parse_stamp(data.decode("ascii", "replace").strip())
        return found if found is not None else now

    def claim_path(self, name: str, tick: datetime, generation: int) -> Path:
        return self.folder(name) / f"{stamp(tick)}{GEN_SEP}{generation}{CLAIM}"

    def done_path(self, name: str, tick: datetime) -> Path:
        return self.folder(name) / f"{stamp(tick)}{DONE}"

    # ------------------------------------------------------------ reading

    def listing(self, name: str) -> dict[datetime, TickFiles]:
        """Every tick of the schedule with files, by instant (no file opened)."""
        folder = self.root / name
        try:
            names = self.spool.ops.scandir_names(folder)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        out: dict[datetime, TickFiles] = {}
        for entry in names:
            parsed = parse_name(entry)
            if parsed is None:
                continue
            tick, generation = parsed
            files = out.setdefault(tick, TickFiles())
            if generation is None:
                files.done = True
            else:
                files.generations.add(generation)
        return out

    def read_claim(self, path: Path) -> ClaimRecord | None:
        """A claim file's record; None when it is gone or unreadable (logged)."""
        try:
            data, _st = self.spool.ops.read_regular_stat(path, CLAIM_MAX_BYTES)
            if len(data) > CLAIM_MAX_BYTES:
                raise ValueError("larger than a claim can be")
            return decode_claim(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logs.event("tick_claim_unreadable", logs.WARNING, file=path, error=exc)
            return None

    def newest_claim(self, name: str, tick: datetime, files: TickFiles) -> ClaimRecord | None:
        for generation in sorted(files.generations, reverse=True):
            found = self.read_claim(self.claim_path(name, tick, generation))
            if found is not None:
                return found
        return None

    # ------------------------------------------------------------ writing

    def _create(self, path: Path, data: bytes, label: str) -> bool:
        """Publish data at path, never replacing; False if the name exists."""
        tmp = self.spool.write_tmp(data, label)
        try:
            self.spool.ops.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            self.spool.ops.unlink_quiet(tmp)
        self.spool.sync_dir(path.parent)
        return True

    def claim(self, record: ClaimRecord) -> bool:
        """Claim the tick (generation ``record.generation``): True if ours.

        EEXIST may answer a link that did happen (a retransmitted request on
        a network filesystem): the token read back says whether it is ours.
        """
        path = self.claim_path(record.schedule, record.tick, record.generation)
        if self._create(path, record.encode(), "claim"):
            return True
        found = self.read_claim(path)
        return found is not None and found.token == record.token

    def mark_done(self, name: str, tick: datetime, job_id: str | None, outcome: str) -> None:
        data = json_bytes({"tick": tick.isoformat(), "job": job_id, "outcome": outcome})
        self._create(self.done_path(name, tick), data, "done")

    def located(self, job_id: str) -> Status | None:
        """Where the job is, looked up twice (it may move between two looks)."""
        for _ in range(2):
            found = self.spool.locate(job_id)
            if found is not None:
                return found[0]
        return None

    def publish(self, record: ClaimRecord, spec: ScheduleSpec) -> bool:
        """Queue the claimed tick's job unless it exists anywhere; True if we did."""
        job_id = record.job_id
        if job_id is None or self.located(job_id) is not None:
            return False
        job = Job(job=spec.job, method=spec.method, params=spec.params, id=job_id)
        try:
            self.spool.submit(job, by=f"schedule {record.schedule}", via="schedule")
        except Conflict:
            return False
        return True

    # ------------------------------------------------------------ pruning

    def prune(self, name: str, older_than: datetime) -> int:
        """Remove the files of settled ticks older than older_than, but the
        newest settled one; returns how many files went."""
        listing = self.listing(name)
        settled = [t for t, files in listing.items() if files.done]
        newest = max(settled, default=None)
        removed = 0
        for tick in settled:
            if tick >= older_than or tick == newest:
                continue
            paths = [self.claim_path(name, tick, g) for g in listing[tick].generations]
            for path in [*paths, self.done_path(name, tick)]:  # the mark last
                with contextlib.suppress(FileNotFoundError):
                    self.spool.ops.unlink(path)
                    removed += 1
        return removed


def new_token() -> str:
    return secrets.token_hex(12)


def tick_record(
    name: str,
    tick: datetime,
    *,
    generation: int,
    runner: str,
    host: str,
    skip_reason: str | None = None,
) -> ClaimRecord:
    return ClaimRecord(
        schedule=name,
        tick=tick.astimezone(UTC),
        generation=generation,
        token=new_token(),
        job_id=None if skip_reason else tick_job_id(name, tick),
        reason=skip_reason,
        runner=runner,
        host=host,
    )


# ------------------------------------------------------------ for people (CLI, dashboard)


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as the CLI and the dashboard show it."""

    name: str
    spec: ScheduleSpec
    last_tick: datetime | None
    last_job: str | None
    last_status: str | None
    next_tick: datetime | None

    def to_public(self) -> dict[str, Any]:
        zone = self.spec.rule().zone()
        return {
            "name": self.name,
            "job": self.spec.job,
            "method": self.spec.method,
            "cron": self.spec.cron,
            "every": self.spec.every,
            "timezone": self.spec.timezone,
            "missed": self.spec.missed,
            "overlap": self.spec.overlap,
            "last_run_utc": _iso(self.last_tick),
            "last_run_local": _iso(self.last_tick.astimezone(zone) if self.last_tick else None),
            "last_job": self.last_job,
            "last_status": self.last_status,
            "next_run_utc": _iso(self.next_tick),
            "next_run_local": _iso(self.next_tick.astimezone(zone) if self.next_tick else None),
        }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def last_run(ticks: Ticks, name: str) -> tuple[datetime | None, str | None]:
    """The newest claimed tick and the job it queued (None when skipped)."""
    listing = ticks.listing(name)
    if not listing:
        return None, None
    newest = max(listing)
    found = ticks.newest_claim(name, newest, listing[newest])
    return newest, found.job_id if found else tick_job_id(name, newest)


def views(spool: Spool, schedules: dict[str, ScheduleSpec], now: datetime) -> list[ScheduleView]:
    ticks = Ticks(spool)
    out = []
    for name, spec in sorted(schedules.items()):
        tick, job_id = last_run(ticks, name)
        status = None
        if job_id is not None:
            found = spool.locate(job_id)
            status = found[0].value if found else None
        out.append(ScheduleView(name, spec, tick, job_id, status, spec.rule().next_after(now)))
    return out


def run_now(spool: Spool, name: str, spec: ScheduleSpec, *, by: str, via: str) -> str:
    """Queue one run of the schedule's job now, under an id no tick has."""
    job_id = run_now_id(name, new_id())
    job = Job(job=spec.job, method=spec.method, params=spec.params, id=job_id)
    spool.submit(job, by=by, via=via)
    logs.append(spool.log_dir, "submitted", job=job_id, name=f"{spec.job}.{spec.method}", via=via)
    return job_id
