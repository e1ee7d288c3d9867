"""pgqueue: a job queue for Python that needs nothing but PostgreSQL.

A job exists if and only if the transaction that enqueued it committed::

    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO orders ...")
        pgqueue.enqueue(conn, "send_email", {"to": "a@example.com"}, queue="email")
    # committed: the job exists and a worker has been woken
"""

from __future__ import annotations

from . import events
from .backoff import RetryPolicy
from .batches import (
    AsyncBatch,
    Batch,
    BatchInfo,
    batch,
    batch_async,
    get_batch,
    get_batch_async,
    list_batches,
)
from .chains import chain, chain_async
from .control import (
    CancelResult,
    QueueLimits,
    cancel,
    cancel_async,
    get_queue_limits,
    pause_queue,
    pause_queue_async,
    resume_queue,
    resume_queue_async,
    set_concurrency_limit,
    set_concurrency_limit_async,
    set_rate_limit,
    set_rate_limit_async,
)
from .errors import (
    DatabaseUnavailableError,
    InvalidJobError,
    JobFailedError,
    JobNotFoundError,
    MigrationError,
    PermanentError,
    PgQueueError,
    ResultNotReadyError,
    Retry,
    SchemaNotReadyError,
    TaskError,
)
from .migrate import migrate, migration_sql
from .producer import JobSpec, enqueue, enqueue_many
from .producer_async import enqueue_async, enqueue_many_async
from .results import result, result_async, wait_for_result, wait_for_result_async
from .tasks import Registry, Task
from .types import Job, JobContext, JobState
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "CancelResult",
    "DatabaseUnavailableError",
    "InvalidJobError",
    "Job",
    "JobContext",
    "JobSpec",
    "JobState",
    "MigrationError",
    "PermanentError",
    "PgQueueError",
    "QueueLimits",
    "Registry",
    "Retry",
    "RetryPolicy",
    "SchemaNotReadyError",
    "Task",
    "TaskError",
    "Worker",
    "cancel",
    "cancel_async",
    "chain",
    "chain_async",
    "enqueue",
    "enqueue_async",
    "enqueue_many",
    "enqueue_many_async",
    "events",
    "get_queue_limits",
    "migrate",
    "migration_sql",
    "pause_queue",
    "pause_queue_async",
    "resume_queue",
    "resume_queue_async",
    "set_concurrency_limit",
    "set_concurrency_limit_async",
    "set_rate_limit",
    "set_rate_limit_async",
]

# Operating a queue: inspect, retry, prune (pgqueue.admin).
from .admin import (
    InvalidArgumentError,
    RetryOutcome,
    get_job,
    list_jobs,
    list_queues,
    list_workers,
    prune,
    retry,
    retry_failed,
)

__all__ += [
    "InvalidArgumentError",
    "RetryOutcome",
    "get_job",
    "list_jobs",
    "list_queues",
    "list_workers",
    "prune",
    "retry",
    "retry_failed",
]

# Results and batches (pgqueue.results, pgqueue.batches).
__all__ += [
    "AsyncBatch",
    "Batch",
    "BatchInfo",
    "JobFailedError",
    "JobNotFoundError",
    "ResultNotReadyError",
    "batch",
    "batch_async",
    "get_batch",
    "get_batch_async",
    "list_batches",
    "result",
    "result_async",
    "wait_for_result",
    "wait_for_result_async",
]
