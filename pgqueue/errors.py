"""Errors pgqueue raises, one subclass per failure a user can act on.

Every error pgqueue raises on purpose derives from :class:`PgQueueError`. Input
errors also derive from :class:`ValueError` or :class:`TypeError`, so code that
already catches those keeps working.
"""

from __future__ import annotations

__all__ = [
    "DatabaseUnavailableError",
    "InvalidJobError",
    "MigrationError",
    "PgQueueError",
    "SchemaNotReadyError",
    "TaskError",
]


class PgQueueError(Exception):
    """Base class of every error pgqueue raises on purpose."""


class InvalidJobError(PgQueueError, ValueError):
    """The arguments given to enqueue describe no valid job.

    Raised before anything is sent to the database: the caller's transaction
    is untouched and still usable.
    """


class SchemaNotReadyError(PgQueueError):
    """The pgqueue schema is missing or older than this version of pgqueue.

    Run ``pgqueue migrate`` (or :func:`pgqueue.migrate`) against the database.
    """


class MigrationError(PgQueueError):
    """A migration could not be applied; nothing of it was committed."""


class TaskError(PgQueueError, ValueError):
    """A task definition is invalid, or a task name is registered twice."""


class DatabaseUnavailableError(PgQueueError):
    """The database could not be reached (bad DSN, server down, network cut)."""


class Retry(Exception):
    """Raise from a handler to retry the job after ``delay`` seconds.

    The attempt still counts: when it was the last one, the job fails.
    """

    def __init__(self, delay: float = 0.0, reason: str = "") -> None:
        if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
            raise TaskError(f"Retry delay must be a number of seconds >= 0, got {delay!r}")
        super().__init__(reason or f"retry requested in {delay} s")
        self.delay = float(delay)
        self.reason = reason


class PermanentError(Exception):
    """Raise from a handler to fail the job at once, without further attempts."""
