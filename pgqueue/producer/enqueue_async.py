"""Async twins of :mod:`pgqueue.producer.enqueue` for ``psycopg.AsyncConnection``.

They validate with the same code and run the same steps; only the I/O differs
(:func:`pgqueue.producer.steps.run_steps_async`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from . import params as _params
from .connections import AsyncHandle
from .enqueue import (
    BatchBase,
    JobSpec,
    OnConflict,
    batch_id_of,
    enqueue_many_steps,
    enqueue_steps,
    to_new_jobs,
)
from .hooks import enqueue_scope
from .params import DEFAULT_QUEUE
from .steps import check_async, run_steps_async
from .tags import Tags

__all__ = ["enqueue_async", "enqueue_many_async"]


async def enqueue_async(
    conn: AsyncHandle,
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
    tags: Tags | None = None,
    meta: Mapping[str, Any] | None = None,
    unique_for: timedelta | float | None = None,
    debounce: timedelta | float | None = None,
    on_conflict: OnConflict = "keep",
) -> int:
    """:func:`pgqueue.enqueue` for an ``AsyncConnection``; same arguments and errors."""
    check_async(conn, sync_twin="pgqueue.enqueue")
    job = _params.new_job(
        task, args, queue=queue, priority=priority, run_at=run_at, delay=delay,
        max_attempts=max_attempts, unique_key=unique_key, trace_context=None,
        expires_at=expires_at, ttl=ttl, depends_on=depends_on, concurrency_key=concurrency_key,
        batch_id=batch_id_of(batch), tags=tags, meta=meta, unique_for=unique_for,
        debounce=debounce, on_conflict=on_conflict,
    )
    with enqueue_scope([job]) as scope:
        return scope.done(await run_steps_async(conn, enqueue_steps(scope.jobs[0])))  # type: ignore[no-any-return]


async def enqueue_many_async(
    conn: AsyncHandle, jobs: Iterable[JobSpec], *,
    batch: BatchBase | None = None,
) -> list[int]:
    """:func:`pgqueue.enqueue_many` for an ``AsyncConnection``."""
    check_async(conn, sync_twin="pgqueue.enqueue_many")
    with enqueue_scope(to_new_jobs(jobs, batch_id_of(batch))) as scope:
        return scope.done(await run_steps_async(conn, enqueue_many_steps(scope.jobs)))  # type: ignore[no-any-return]
