"""pgqueue: a job queue for Python that needs nothing but PostgreSQL.

A job exists if and only if the transaction that enqueued it committed::

    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO orders ...")
        pgqueue.enqueue(conn, "send_email", {"to": "a@example.com"}, queue="email")
    # committed: the job exists and a worker has been woken

``import pgqueue`` loads only the producer, its validation, the SQL loader, the
errors and migrations; every other public name (``Worker``, ``batch``,
``Registry``, ...) loads its module on first use. An application that only
enqueues never loads the worker, the CLI, the dashboard or observability.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from .errors import (
    DatabaseUnavailableError,
    InvalidArgumentError,
    InvalidJobError,
    JobFailedError,
    JobNotFoundError,
    MigrationError,
    PermanentError,
    PgQueueError,
    QueueFullError,
    ResultNotReadyError,
    Retry,
    SchemaNotReadyError,
    Snooze,
    TaskError,
    TransactionUseError,
)

# Eager, unlike the rest: the function ``migrate`` shares its module's name, and
# a later ``import pgqueue.migrate`` must not find the module in its place.
from .migrate import migrate, migration_sql
from .producer import hooks as _hooks
from .producer.enqueue import JobSpec, enqueue, enqueue_many
from .producer.enqueue_async import enqueue_async, enqueue_many_async

if TYPE_CHECKING:
    from . import events
    from .admin import (
        RetryOutcome,
        get_job,
        list_jobs,
        list_queues,
        list_workers,
        prune,
        retry,
        retry_failed,
    )
    from .backoff import RetryPolicy
    from .producer.backpressure import wait_for_room, wait_for_room_async
    from .producer.batches import (
        AsyncBatch,
        Batch,
        BatchInfo,
        batch,
        batch_async,
        get_batch,
        get_batch_async,
        list_batches,
    )
    from .producer.chains import chain, chain_async
    from .producer.control import (
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
        set_max_depth,
        set_max_depth_async,
        set_rate_limit,
        set_rate_limit_async,
        set_warn_depth,
        set_warn_depth_async,
    )
    from .producer.queue_retention import (
        get_retention,
        get_retention_async,
        set_retention,
        set_retention_async,
    )
    from .producer.results import result, result_async, wait_for_result, wait_for_result_async
    from .producer.tagged import (
        CancelCounts,
        cancel_jobs,
        cancel_jobs_async,
        retry_jobs,
        retry_jobs_async,
    )
    from .tasks import Registry, Task
    from .types import Job, JobContext, JobState
    from .worker import Worker
    from .worker.queue_specs import QueueSpec

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
    "QueueSpec",
    "Registry",
    "Retry",
    "RetryPolicy",
    "SchemaNotReadyError",
    "Snooze",
    "Task",
    "TaskError",
    "TransactionUseError",
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

# Bounded queues (pgqueue.producer.control, pgqueue.errors).
__all__ += [
    "QueueFullError",
    "set_max_depth",
    "set_max_depth_async",
    "set_warn_depth",
    "set_warn_depth_async",
    "wait_for_room",
    "wait_for_room_async",
]

# Operating a queue: inspect, retry, prune (pgqueue.admin).
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

# Retention of history per queue (pgqueue.producer.queue_retention).
__all__ += [
    "get_retention",
    "get_retention_async",
    "set_retention",
    "set_retention_async",
]

# Actions by tag (pgqueue.producer.tagged).
__all__ += [
    "CancelCounts",
    "cancel_jobs",
    "cancel_jobs_async",
    "retry_jobs",
    "retry_jobs_async",
]

# Results and batches (pgqueue.producer.results, pgqueue.producer.batches).
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

# The module of every public name loaded on first use (None: the name is the module).
_LAZY: dict[str, str | None] = {
    "events": None,
    **dict.fromkeys(("RetryOutcome", "get_job", "list_jobs", "list_queues", "list_workers",
                     "prune", "retry", "retry_failed"), "admin"),
    "RetryPolicy": "backoff",
    **dict.fromkeys(("AsyncBatch", "Batch", "BatchInfo", "batch", "batch_async", "get_batch",
                     "get_batch_async", "list_batches"), "producer.batches"),
    **dict.fromkeys(("chain", "chain_async"), "producer.chains"),
    **dict.fromkeys(("wait_for_room", "wait_for_room_async"), "producer.backpressure"),
    **dict.fromkeys(("CancelResult", "QueueLimits", "cancel", "cancel_async",
                     "get_queue_limits", "pause_queue", "pause_queue_async", "resume_queue",
                     "resume_queue_async", "set_concurrency_limit",
                     "set_concurrency_limit_async", "set_rate_limit",
                     "set_rate_limit_async", "set_max_depth", "set_max_depth_async",
                     "set_warn_depth", "set_warn_depth_async"), "producer.control"),
    **dict.fromkeys(("result", "result_async", "wait_for_result", "wait_for_result_async"),
                    "producer.results"),
    **dict.fromkeys(("get_retention", "get_retention_async", "set_retention",
                     "set_retention_async"), "producer.queue_retention"),
    **dict.fromkeys(("CancelCounts", "cancel_jobs", "cancel_jobs_async", "retry_jobs",
                     "retry_jobs_async"), "producer.tagged"),
    **dict.fromkeys(("Registry", "Task"), "tasks"),
    **dict.fromkeys(("Job", "JobContext", "JobState"), "types"),
    "Worker": "worker",
    "QueueSpec": "worker.queue_specs",
}


def __getattr__(name: str) -> Any:
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    if module_name is None:
        value: Any = importlib.import_module(f"{__name__}.{name}")
    else:
        value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _trace_enqueue(jobs: list[Any]) -> _hooks.EnqueueScope | None:
    """The producer's trace hook until OpenTelemetry is in use, then tracing's own.

    Only a process that has imported OpenTelemetry loads pgqueue's tracing: the
    producer span and the trace context stored on the job cost nothing otherwise.
    """
    if "opentelemetry.trace" not in sys.modules:
        return None
    from .observability.tracing import producer_scope

    _hooks.set_trace_hook(producer_scope)
    return producer_scope(jobs)


_hooks.set_trace_hook(_trace_enqueue)
