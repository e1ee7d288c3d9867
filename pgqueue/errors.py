"""Errors pgqueue raises, one subclass per failure a user can act on.

Every error pgqueue raises on purpose derives from :class:`PgQueueError`. Input
errors also derive from :class:`ValueError` or :class:`TypeError`, so code that
already catches those keeps working. Every error class lives here; the modules
that defined some before (``pgqueue.admin``, ``pgqueue.worker.config``)
re-export them.

A bad argument raises the same class wherever it is passed: a job's fields given
to enqueue raise :class:`InvalidJobError`; any other argument (a job id, a
limit, a filter, a timeout) raises :class:`InvalidArgumentError`, which is also
an :class:`InvalidJobError` so that ``except InvalidJobError`` clauses written
around controls keep catching it.
"""

from __future__ import annotations

import math
from datetime import timedelta

__all__ = [
    "ConfigError",
    "DatabaseUnavailableError",
    "DemoError",
    "InvalidArgumentError",
    "InvalidJobError",
    "JobFailedError",
    "JobNotFoundError",
    "MigrationError",
    "PgQueueError",
    "QueueFullError",
    "ReplicaUnavailableError",
    "ResultNotReadyError",
    "SchemaNotReadyError",
    "Snooze",
    "TaskError",
    "TransactionUseError",
    "WorkerStartError",
]


class PgQueueError(Exception):
    """Base class of every error pgqueue raises on purpose."""


class InvalidJobError(PgQueueError, ValueError):
    """The arguments given to enqueue describe no valid job.

    Raised before anything is sent to the database: the caller's transaction
    is untouched and still usable.
    """


class InvalidArgumentError(InvalidJobError):
    """An argument of a call other than enqueue's job fields is invalid.

    A job id, a reason, a limit, a cursor, an age, a filter, a timeout, or a
    connection unfit for waiting, given to the admin, control, results or batch
    functions. Raised before anything is sent to the database.
    """


class ConfigError(PgQueueError, ValueError):
    """A worker setting is out of range.

    Raised when a :class:`pgqueue.Worker` is built (or ``pgqueue worker``
    starts), before it connects.
    """


class SchemaNotReadyError(PgQueueError):
    """The pgqueue schema is missing or older than this version of pgqueue.

    Run ``pgqueue migrate`` (or :func:`pgqueue.migrate`) against the database.
    """


class MigrationError(PgQueueError):
    """A migration could not be applied; nothing of it was committed."""


class TaskError(PgQueueError, ValueError):
    """A task definition is invalid, or a task name is registered twice."""


class TransactionUseError(PgQueueError, RuntimeError):
    """``ctx.transaction()`` was used in a way it cannot honour: opened twice in
    one attempt, its connection used after the block (or committed, rolled back
    or switched to autocommit by the handler), ``with`` in an async handler,
    after the attempt ended, or outside a worker."""


class DatabaseUnavailableError(PgQueueError):
    """The database could not be reached (bad DSN, server down, network cut)."""


class ReplicaUnavailableError(DatabaseUnavailableError):
    """The read replica (``--read-dsn``, ``PGQUEUE_READ_DSN``) could not be reached.

    Reads that were sent to it fail with this error; pgqueue never reads from
    the primary instead. Writes go to the primary and are not affected.
    """


class WorkerStartError(PgQueueError):
    """A worker process could not start, or kept dying right after its start.

    Raised by the supervisor of ``pgqueue worker --processes N``
    (:func:`pgqueue.worker.processes.run_processes`) once it gives up on a child.
    """


class DemoError(PgQueueError):
    """The demo could not finish its jobs (the worker stopped or stalled).

    Raised by :func:`pgqueue.demo.run_demo` (``pgqueue demo``).
    """


class JobNotFoundError(PgQueueError, LookupError):
    """No job has this id: never enqueued, not committed yet, or pruned from history."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job has id {job_id} (never enqueued, its transaction has not "
                         "committed, or it was pruned from history)")
        self.job_id = job_id


class QueueFullError(PgQueueError):
    """The queue holds ``max_depth`` live jobs or more: the enqueue was refused.

    Nothing was inserted and no statement failed, so the caller's transaction
    is still usable (commit the rest, or retry the enqueue later). ``queue``,
    ``max_depth`` and ``depth`` (its live jobs, counted up to the limit) say
    which queue and how full; ``adding`` is how many jobs the call brought.
    Only new jobs are refused: retries, snoozes, hand-backs, reclaims,
    periodic ticks and batch callbacks never are.
    """

    def __init__(self, queue: str, max_depth: int, depth: int, adding: int = 1) -> None:
        jobs = "1 job" if adding == 1 else f"{adding} jobs"
        super().__init__(f"queue {queue!r} is full: it holds {depth} live jobs and its "
                         f"max_depth is {max_depth}; {jobs} refused, nothing was inserted "
                         "(retry once workers have drained it, or raise the limit)")
        self.queue = queue
        self.max_depth = max_depth
        self.depth = depth
        self.adding = adding


class ResultNotReadyError(PgQueueError):
    """The job is still live (``queued`` or ``running``): it has no result yet.

    ``state`` says which. :func:`pgqueue.wait_for_result` waits for it instead.
    """

    def __init__(self, job_id: int, state: str) -> None:
        super().__init__(f"job {job_id} has no result yet: it is {state}")
        self.job_id = job_id
        self.state = state


class JobFailedError(PgQueueError):
    """The job finished without a result: it ``failed`` for good, or was ``cancelled``.

    ``state`` is ``failed`` or ``cancelled``; ``last_error`` is the last error
    message (for a cancelled job, the reason); ``attempts`` the attempts made.
    """

    def __init__(self, job_id: int, state: str, last_error: str | None, attempts: int) -> None:
        detail = f": {last_error}" if last_error else ""
        super().__init__(f"job {job_id} ended {state} after {attempts} "
                         f"attempt{'s' if attempts != 1 else ''}{detail}")
        self.job_id = job_id
        self.state = state
        self.last_error = last_error
        self.attempts = attempts


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


class Snooze(Exception):
    """Raise (or return) from a handler to run the job again after ``delay``.

    ``delay`` is a number of seconds or a :class:`~datetime.timedelta`, counted on
    the database's clock from when the outcome is written. Unlike :class:`Retry`
    the attempt does not count: the job goes back to ``queued`` with its attempt
    given back and its ``snoozes`` count one higher. Once a job has snoozed as
    many times as its task's ``max_snoozes`` allows, the next snooze fails it for
    good (error kind ``snoozed``). Raises :class:`TaskError` for a delay that is
    not a finite number of seconds from 0 to 100 years.
    """

    def __init__(self, delay: float | timedelta = 0.0, reason: str = "") -> None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if (not isinstance(seconds, int | float) or isinstance(seconds, bool)
                or not math.isfinite(seconds) or not 0 <= seconds <= SNOOZE_MAX_SECONDS):
            raise TaskError(f"Snooze delay must be a timedelta or a number of seconds from 0 "
                            f"to 100 years, got {delay!r}")
        super().__init__(reason or f"snoozed for {seconds} s")
        self.delay = float(seconds)
        self.reason = reason


SNOOZE_MAX_SECONDS = 100 * 365 * 86400.0
"""The longest :class:`Snooze` delay: 100 years, as enqueue's ``delay``."""


class PermanentError(Exception):
    """Raise from a handler to fail the job at once, without further attempts."""
