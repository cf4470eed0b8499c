"""Finishing: from an ended attempt to the job's next file, on disk.

Owns the decision's application and the publication: it records the attempt,
asks ``retry.decide`` (the one pure function that says what happens next),
seals the new record, and hands it to publisher threads that move the claim
on (fsync-bound work, off the loop's thread). A finish that fails on I/O
(disk full, EIO) keeps the job in running/, which this runner still owns,
and is tried again with doubling backoff, never in a hot loop.

Invariants: a claim is published only through ``Spool.finish``, which fences
(invariant 4): a runner that lost its claim publishes nothing; a record that
cannot be encoded keeps its claim byte for byte in corrupt/ (invariant 5);
publisher threads only do file I/O and return what happened, every decision
stays on the loop's thread; each started finish is reported back exactly
once (``published``).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from jobspool import control, logs, progress, unique
from jobspool.attempts import DESTINATION, Active, Report, log_finish, make_attempt, next_updates
from jobspool.config import Config
from jobspool.errors import Conflict
from jobspool.fsops import StrPath
from jobspool.messages import Event
from jobspool.model import Attempt, ErrorInfo, Job, Outcome, utcnow
from jobspool.names import RunningName
from jobspool.publishers import Publishers
from jobspool.retry import Decision, decide
from jobspool.spool import FinishItem, Sealed, Spool
from jobspool.states import Status

PUBLISHERS = 4
FINISH_RETRY_FIRST = 0.5
FINISH_RETRY_MAX = 30.0


@dataclass
class Publication:
    """A decided finish on its way to disk (on a publisher thread)."""

    active: Active
    report: Report
    attempt: Attempt
    decision: Decision
    backoff: float
    sealed: Sealed | None = None  # None: the record could not be encoded

    @property
    def record(self) -> Job:
        """The record being published (before sealing: the job as claimed)."""
        return self.sealed.job if self.sealed is not None else self.active.job


@dataclass
class Unfinished:
    """A finish that failed on I/O (disk full, EIO): the job stays in running/."""

    active: Active
    report: Report
    retry_at: float
    backoff: float


class Finishing:
    def __init__(self, spool: Spool, config: Config, host: str) -> None:
        self.spool = spool
        self.config = config
        self.host = host
        self.rng = random.Random()
        self._pool: Publishers[Publication] | None = None
        self._inflight: dict[str, Publication] = {}
        self._unfinished: list[Unfinished] = []

    def open(self, post: Callable[[Event], None]) -> None:
        """Publish on threads from now on (until then: on the caller's thread)."""
        self._pool = Publishers(PUBLISHERS, self._publish_group, post)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ------------------------------------------------------------ finishing

    def finish(
        self, act: Active, report: Report, backoff: float = FINISH_RETRY_FIRST
    ) -> Job | None:
        """Record the attempt, decide, publish; on I/O errors keep it and retry later.

        Publishing happens on the publisher threads once :meth:`open` ran;
        before that it happens here, and what :meth:`published` returns
        (a retry of ours) is returned."""
        job = act.job
        attempt = make_attempt(act, report, act.host or self.host)
        decision = self._decide(job, attempt, report)
        # A report that says no progress was written spares a look for it.
        wrote = report.progress is not False
        live = progress.read_progress(self.spool, job.id or "") if wrote else None
        updates = next_updates(job, attempt, decision, report=report, act=act, progress=live)
        pub = Publication(act, report, attempt, decision, backoff)
        try:
            pub.sealed = self.spool.seal(job, updates)
        except Exception as exc:  # e.g. a result over the size cap
            return self.published(pub, exc)
        if self._pool is None:
            return self.published(pub, self._publish_safely(pub))
        self._inflight[act.token] = pub
        self._pool.submit(pub)
        return None

    def _decide(self, job: Job, attempt: Attempt, report: Report) -> Decision:
        counted = attempt.outcome is not Outcome.HANDED_BACK  # as in Job.attempts_used
        return decide(
            report.outcome,
            policy=self.config.retry_policy(job.job),
            attempts_used=job.attempts_used + counted,
            max_attempts=job.max_attempts,
            now=utcnow(),
            rand=self.rng.random(),
            error_types=report.error_types,
            requested_delay=report.delay,
        )

    def _publish_safely(self, pub: Publication) -> bool | Exception:
        """:meth:`_publish_group` of one (the finishes made before :meth:`open`)."""
        return self._publish_group([pub])[0]

    def _publish_group(self, pubs: list[Publication]) -> list[bool | Exception]:
        """Runs on a publisher thread: only file I/O, no decisions, never raises.

        The publications a thread found waiting go to disk as one group
        commit (``Spool.finish_many``): each record is durable in its
        destination before its outcome is posted back, so before its job
        counts as done."""
        items = []
        for pub in pubs:
            assert pub.sealed is not None
            items.append((pub.active.path, DESTINATION[pub.decision.action], pub.sealed))
        try:
            published = self.spool.finish_many(items)
        except Exception as exc:  # reported back to the loop, which decides
            return [exc] * len(pubs)
        return [self._after(item, outcome) for item, outcome in zip(items, published, strict=True)]

    def _publish(self, path: StrPath, dst: Status, sealed: Sealed) -> bool:
        """Move our running file on; False if fenced. OSError propagates."""
        outcome = self._after((path, dst, sealed), self.spool.finish_many([(path, dst, sealed)])[0])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _after(self, item: FinishItem, published: str | Exception) -> bool | Exception:
        """What one finish came to: True once its record is published (and
        what the job kept beside it is cleared), False if fenced."""
        _path, dst, sealed = item
        job_id = sealed.job.id or ""
        if isinstance(published, Conflict):
            logs.event("fenced", logs.WARNING, job=job_id, reason=published)
            return False
        if isinstance(published, Exception):
            return published
        try:
            if sealed.job.progress is not None:  # now kept in the record itself
                progress.clear_progress(self.spool, job_id)
            if dst is Status.CANCELLED:
                control.clear_request(self.spool, "cancel", job_id)
            unique.release(self.spool, sealed.job, dst)
        except Exception as exc:  # reported back to the loop, which decides
            return exc
        return True

    def published(self, pub: Publication, outcome: bool | Exception) -> Job | None:
        """A publication ended. Returns the record when it is a retry of ours
        now back in pending/, for the loop to schedule without waiting."""
        self._inflight.pop(pub.active.token, None)
        if isinstance(outcome, Exception) and not isinstance(outcome, OSError):
            # The record itself cannot be written: keep the claim, byte for byte.
            logs.event("finish_error", logs.ERROR, job=pub.record.id, error=outcome)
            with contextlib.suppress(OSError):
                self.spool.quarantine(pub.active.path, f"cannot publish: {outcome}")
            return None
        if isinstance(outcome, OSError):
            # Disk full, EIO...: the job stays in running/ (we still own it)
            # and the finish is tried again with growing backoff, no hot loop.
            logs.event(
                "finish_error",
                logs.ERROR,
                job=pub.record.id,
                to=DESTINATION[pub.decision.action],
                error=outcome,
                retry_in=f"{pub.backoff:g}s",
            )
            retry_at = time.monotonic() + pub.backoff
            self._unfinished.append(Unfinished(pub.active, pub.report, retry_at, pub.backoff))
            return None
        if not outcome:
            return None
        log_finish(pub.record, pub.attempt, pub.decision)
        if DESTINATION[pub.decision.action] is Status.PENDING and pub.record.id:
            return pub.record
        return None

    def retry_unfinished(self, now: float) -> list[Job]:
        """Try again the finishes that hit I/O errors and are due; the retries
        of ours that got published inline."""
        due = [u for u in self._unfinished if u.retry_at <= now]
        retries = []
        for item in due:
            self._unfinished.remove(item)
            backoff = min(FINISH_RETRY_MAX, item.backoff * 2)
            record = self.finish(item.active, item.report, backoff=backoff)
            if record is not None:
                retries.append(record)
        return retries

    def reject(self, claim: RunningName, path: StrPath, job: Job, exc: Exception) -> None:
        """A claimed job the allow-list refuses: failed/ at once, never retried."""
        updates = {
            "reason": f"rejected: {exc}",
            "error": ErrorInfo(type=type(exc).__name__, message=str(exc)),
        }
        try:
            self._publish(path, Status.FAILED, self.spool.seal(job, updates))
        except OSError as io_error:
            logs.event("finish_error", logs.ERROR, job=job.id, to="failed", error=io_error)
            return
        logs.event("rejected", logs.ERROR, job=job.id, name=f"{job.job}.{job.method}", reason=exc)

    # ------------------------------------------------------------ for the loop

    def busy(self) -> bool:
        return bool(self._unfinished or self._inflight)

    def wake_times(self) -> list[float]:
        return [u.retry_at for u in self._unfinished]
