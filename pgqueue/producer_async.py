"""Async twins of :mod:`pgqueue.producer` for ``psycopg.AsyncConnection``.

They validate with the same code and run the same steps; only the I/O differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from . import _params
from ._params import DEFAULT_QUEUE
from .observability.enqueue import observe_enqueue
from .producer import (
    CopyRows,
    JobSpec,
    Steps,
    batch_id_of,
    copy_cursor_setup,
    enqueue_many_steps,
    enqueue_steps,
    to_new_jobs,
    translate_error,
)

if TYPE_CHECKING:
    from .batches import BatchBase

__all__ = ["enqueue_async", "enqueue_many_async"]


async def enqueue_async(
    conn: psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any],
    task: str,
    args: Mapping[str, Any] | None = None,
    *,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    run_at: datetime | None = None,
    delay: timedelta | float | None = None,
    max_attempts: int | None = None,
    unique_key: str | None = None,
    expires_at: datetime | None = None,
    ttl: timedelta | float | None = None,
    depends_on: Iterable[int] | None = None,
    concurrency_key: str | None = None,
    batch: BatchBase | None = None,
) -> int:
    """:func:`pgqueue.enqueue` for an ``AsyncConnection``; same arguments and errors."""
    check_async(conn)
    job = _params.new_job(
        task, args, queue=queue, priority=priority, run_at=run_at, delay=delay,
        max_attempts=max_attempts, unique_key=unique_key, trace_context=None,
        expires_at=expires_at, ttl=ttl, depends_on=depends_on, concurrency_key=concurrency_key,
        batch_id=batch_id_of(batch),
    )
    with observe_enqueue([job]) as scope:
        return scope.done(await run_steps_async(conn, enqueue_steps(scope.jobs[0])))  # type: ignore[no-any-return]


async def enqueue_many_async(
    conn: psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any], jobs: Iterable[JobSpec], *,
    batch: BatchBase | None = None,
) -> list[int]:
    """:func:`pgqueue.enqueue_many` for an ``AsyncConnection``."""
    check_async(conn)
    with observe_enqueue(to_new_jobs(jobs, batch_id_of(batch))) as scope:
        return scope.done(await run_steps_async(conn, enqueue_many_steps(scope.jobs)))  # type: ignore[no-any-return]


async def run_steps_async(
    conn: psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any], steps: Steps
) -> Any:
    """Drive producer steps on an async connection or cursor."""
    cur = conn if isinstance(conn, psycopg.AsyncCursor) else conn.cursor()
    try:
        step = next(steps)
        while True:
            try:
                if isinstance(step, CopyRows):
                    await _copy(cur.connection, step)
                    step = steps.send([])
                    continue
                await cur.execute(*step)
            except psycopg.Error as exc:
                translated = translate_error(exc)
                if translated is None:
                    raise
                raise translated from exc
            step = steps.send(await cur.fetchall())
    except StopIteration as stop:
        return stop.value


async def _copy(conn: psycopg.AsyncConnection[Any], step: CopyRows) -> None:
    # A cursor of our own: its adapters (the jsonb text dumper) stay private.
    async with conn.cursor() as cur:
        copy_cursor_setup(cur)
        async with cur.copy(step.sql) as copy:
            copy.set_types(list(step.types))
            for row in step.rows:
                await copy.write_row(row)


def check_async(conn: object, sync_twin: str = "pgqueue.enqueue") -> None:
    """TypeError unless ``conn`` is an AsyncConnection or AsyncCursor."""
    if not isinstance(conn, psycopg.AsyncConnection | psycopg.AsyncCursor):
        raise TypeError(
            "conn must be a psycopg AsyncConnection or AsyncCursor, got "
            f"{type(conn).__name__}; use {sync_twin} for a sync Connection"
        )
