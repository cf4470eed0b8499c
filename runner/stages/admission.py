"""One claim pass's admission: may this ready entry be claimed now?

Owns the order of the checks a claim passes (``claimgate``'s rules): a
pause, this runner's own cap for the name, a spool-wide slot
(:mod:`jobspool.slots`), a rate token (:mod:`jobspool.rates`); and what an
admitted entry holds until its claim rename succeeds or fails. Dispatch
makes one :class:`Admission` per pass and asks :meth:`fits` for each
entry the schedule offers.

Invariants: the shared things are taken last and only when everything
before allows the claim, and a slot is given back when the rate refuses
(a name held back by its rate never sits on a slot); once a shared limit
refused a name, the rest of the pass refuses it without touching the disk;
whatever :meth:`fits` took is either handed to the claim
(:meth:`holdings`) or given back (:meth:`give_back`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection

from jobspool import claimgate, logs, rates, slots, tokens
from jobspool.config import Config, JobSpec
from jobspool.names import RunningName
from jobspool.schedule import Entry
from jobspool.spool import Spool

# How soon a claim held back by a slot other runners hold is tried again.
SHARED_RETRY_SECONDS = 0.25


def attempt_token(claim: RunningName) -> str:
    """An attempt's token: its claim's file name without the suffix."""
    return claim.filename[: -len(".json")]


class Admission:
    def __init__(
        self,
        spool: Spool,
        config: Config,
        *,
        paused: Collection[str],
        running: Counter[str],
        runner_id: str,
        wall: float,
        trouble: set[str],
    ) -> None:
        self.spool = spool
        self.config = config
        self.paused = paused
        self.running = running  # this runner's attempts in flight, by name
        self.runner_id = runner_id
        self.wall = wall
        self.trouble = trouble  # names whose shared files failed on I/O, said once
        self.batch: Counter[str] = Counter()
        self.refused = False
        self.full: set[str] = set()  # names a shared limit refused in this pass
        self.waits: list[float] = []
        self._held: dict[str, tuple[tokens.Taken | None, tokens.Taken | None]] = {}

    def fits(self, entry: Entry) -> bool:
        spec = self.config.settings.allowed_jobs.get(entry.job)
        ok = entry.job not in self.full and not claimgate.is_paused(entry.job, self.paused)
        cap = spec.per_runner_cap if spec else None
        ok = ok and claimgate.fits_here(self.running[entry.job] + self.batch[entry.job], cap)
        ok = ok and (spec is None or self._shared(entry, spec))
        self.refused = self.refused or not ok
        return ok

    def _shared(self, entry: Entry, spec: JobSpec) -> bool:
        holder = tokens.Holder(self.runner_id, entry.job_id, self._token(entry))
        slot = None
        if spec.global_cap is not None:
            slot = self._try(
                entry.job, lambda: slots.take(self.spool, entry.job, spec.global_cap or 0, holder)
            )
            if slot is None:
                self.waits.append(SHARED_RETRY_SECONDS)
                self.full.add(entry.job)
                return False
        token = None
        if spec.rate is not None:
            rate = spec.rate
            token = self._try(
                entry.job, lambda: rates.take(self.spool, entry.job, rate, self.wall, holder)
            )
            if token is None:
                self.give_back(slot)
                self.waits.append(claimgate.next_window(self.wall, rate.period))
                self.full.add(entry.job)
                return False
        self._held[entry.name] = (slot, token)
        return True

    def _token(self, entry: Entry) -> str:
        return attempt_token(RunningName(entry.job_id, self.runner_id, entry.attempt))

    def _try(self, name: str, take: Callable[[], tokens.Taken | None]) -> tokens.Taken | None:
        try:
            found = take()
        except OSError as exc:  # a link or a file where a folder belongs, EIO...
            if name not in self.trouble:
                logs.event("limit_error", logs.ERROR, job_name=name, error=exc)
            self.trouble.add(name)
            return None
        self.trouble.discard(name)
        return found

    def holdings(self, entry: Entry) -> tuple[tokens.Taken | None, tokens.Taken | None]:
        """The (slot, rate token) an admitted entry took, handed over to its claim."""
        return self._held.pop(entry.name, (None, None))

    def give_back(self, taken: tokens.Taken | None) -> None:
        if taken is None:
            return
        try:
            tokens.give_back(self.spool, taken)
        except OSError as exc:  # a slot: its holder's next sweep tries again
            logs.event("limit_error", logs.ERROR, file=taken.path, error=exc)

    @property
    def retry_in(self) -> float | None:
        return min(self.waits) if self.waits else None
