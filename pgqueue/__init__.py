"""pgqueue: a job queue for Python that needs nothing but PostgreSQL.

A job exists if and only if the transaction that enqueued it committed::

    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO orders ...")
        pgqueue.enqueue(conn, "send_email", {"to": "a@example.com"}, queue="email")
    # committed: the job exists and a worker has been woken
"""

from __future__ import annotations

from .errors import (
    DatabaseUnavailableError,
    InvalidJobError,
    MigrationError,
    PgQueueError,
    SchemaNotReadyError,
    TaskError,
)
from .migrate import migrate, migration_sql
from .producer import JobSpec, enqueue, enqueue_many
from .producer_async import enqueue_async, enqueue_many_async

__version__ = "0.1.0"

__all__ = [
    "DatabaseUnavailableError",
    "InvalidJobError",
    "JobSpec",
    "MigrationError",
    "PgQueueError",
    "SchemaNotReadyError",
    "TaskError",
    "enqueue",
    "enqueue_async",
    "enqueue_many",
    "enqueue_many_async",
    "migrate",
    "migration_sql",
]
