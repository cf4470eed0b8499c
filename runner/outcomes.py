"""The names of how an attempt ends, shared by the attempt's process and the runner.

Plain strings, with no imports: the fork server loads this module, and every
attempt is a fork of it (see ``zygote``). ``model.Outcome`` gives the same
names as an enum to the runner's side, which never spells them itself.

Invariant: an attempt may report only what it can know about itself
(:data:`REPORTABLE`). The other outcomes are the runner's findings (a kill it
ordered, a crash it saw, a lost runner, a hand-back at shutdown); one that
arrives in an attempt's report is not believed (a job that said
``handed_back`` would run without its attempts being counted).
"""

SUCCEEDED = "succeeded"
FAILED = "failed"  # the job raised
RETRY = "retry"  # the job asked for a retry
REJECTED = "rejected"  # not allowed, bad params: never retried

TIMED_OUT = "timed_out"
CRASHED = "crashed"  # the process died without reporting (signal, exit)
CANCELLED = "cancelled"
LOST = "lost"  # its runner died; recorded by recovery
HANDED_BACK = "handed_back"  # runner shut down; does not count

REPORTABLE = frozenset((SUCCEEDED, FAILED, RETRY, REJECTED))
