"""The exception tree of jobspool.

Every error a user can cause derives from :class:`JobspoolError`, so callers
catch one type and show its message; nothing here carries I/O.
"""

from __future__ import annotations


class JobspoolError(Exception):
    """Base of every error jobspool raises on purpose."""


class ConfigError(JobspoolError):
    """allowed_jobs.yaml (or an override) is unreadable or invalid."""


class JobRejected(JobspoolError):
    """A job may not run: unknown name, method not allowed, bad params."""


class NotAllowed(JobRejected):
    """The job name or method is not in the allow-list."""


class InvalidParams(JobRejected):
    """The params do not bind to the method's signature or fail its types."""


class InvalidJobFile(JobspoolError):
    """Bytes that are not a job at all (bad JSON, wrong shape, too big)."""


class JobNotFound(JobspoolError):
    """No job with that id is in the spool."""


class Conflict(JobspoolError):
    """The job changed state under us; the other actor won the race."""


class SpoolFull(JobspoolError):
    """Free space or inodes are under the configured minimum."""


class NotPublished(JobspoolError):
    """A batch stopped before all its jobs were published.

    ``published`` names exactly the jobs that stayed queued: those a runner
    had already taken when the others were withdrawn (often none).
    """

    def __init__(self, message: str, published: list[str]) -> None:
        super().__init__(message)
        self.published = published


class SpoolError(JobspoolError):
    """The spool directory itself is unusable (missing, a symlink, not writable)."""


class Retry(Exception):
    """Raised by a job to ask for another attempt after ``delay`` seconds.

    The attempt still counts against max_attempts, so a job cannot loop
    forever by raising it.
    """

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        super().__init__(reason or "job asked for a retry")
        self.delay = delay
        self.reason = reason
