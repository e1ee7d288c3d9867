"""Enqueue jobs on the caller's own connection, inside the caller's transaction.

Invariants:
- pgqueue never commits, rolls back or opens a connection here: the caller's
  transaction decides whether the job exists.
- All input is validated (``params``) before the first statement runs, so a bad
  call raises :class:`~pgqueue.errors.InvalidJobError` and leaves the caller's
  transaction usable.

The database steps are written once, as generators that yield ``(sql, params)``
and receive the fetched rows (:mod:`pgqueue.producer.insert_steps`);
:mod:`pgqueue.producer.enqueue_async` drives the same generators on an
``AsyncConnection``. What an enqueue reports goes through the producer's own
hook points (:mod:`pgqueue.producer.hooks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal, NotRequired, TypedDict

from ..errors import InvalidJobError
from . import params as _params
from .connections import SyncHandle
from .hooks import enqueue_scope
from .insert_steps import enqueue_many_steps, enqueue_steps, room_steps
from .params import DEFAULT_QUEUE, NewJob
from .steps import check_sync, run_steps
from .tags import Tags

__all__ = ["BatchBase", "JobSpec", "OnConflict", "enqueue", "enqueue_many",
           "enqueue_many_steps", "enqueue_steps", "room_steps"]

#: ``on_conflict``: what a debounced enqueue does to the pending job of its key.
OnConflict = Literal["keep", "replace"]

class BatchBase:
    """What a batch's jobs need to know of it: its id, and whether it is sealed.

    :mod:`pgqueue.producer.batches` builds its batches on it; it lives here so that the
    producer checks ``batch=`` without importing them.
    """

    __slots__ = ("_sealed", "id")

    def __init__(self, batch_id: int) -> None:
        self.id = batch_id
        self._sealed = False

    @property
    def sealed(self) -> bool:
        """True once sealed (by this object): no more jobs may join."""
        return self._sealed

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id}{' sealed' if self._sealed else ''}>"


class JobSpec(TypedDict):
    """One job for :func:`enqueue_many`; only ``task`` is required."""

    task: str
    args: NotRequired[Mapping[str, Any] | None]
    queue: NotRequired[str]
    priority: NotRequired[int]
    run_at: NotRequired[datetime | None]
    delay: NotRequired[timedelta | float | None]
    max_attempts: NotRequired[int | None]
    unique_key: NotRequired[str | None]
    expires_at: NotRequired[datetime | None]
    ttl: NotRequired[timedelta | float | None]
    depends_on: NotRequired[Iterable[int] | None]
    concurrency_key: NotRequired[str | None]
    tags: NotRequired[Tags | None]
    meta: NotRequired[Mapping[str, Any] | None]
    unique_for: NotRequired[timedelta | float | None]
    debounce: NotRequired[timedelta | float | None]
    on_conflict: NotRequired[OnConflict]


_SPEC_KEYS = frozenset(JobSpec.__annotations__)


def enqueue(
    conn: SyncHandle, task: str, args: Mapping[str, Any] | None = None, *,
    queue: str = DEFAULT_QUEUE, priority: int = 0, run_at: datetime | None = None,
    delay: timedelta | float | None = None, max_attempts: int | None = None,
    unique_key: str | None = None, expires_at: datetime | None = None,
    ttl: timedelta | float | None = None, depends_on: Iterable[int] | None = None,
    concurrency_key: str | None = None, batch: BatchBase | None = None,
    tags: Tags | None = None, meta: Mapping[str, Any] | None = None,
    unique_for: timedelta | float | None = None, debounce: timedelta | float | None = None,
    on_conflict: OnConflict = "keep",
) -> int:
    """Insert one job in the caller's transaction and return its id.

    Args:
        conn: the caller's psycopg ``Connection`` or ``Cursor``. pgqueue runs one
            statement on it and never commits.
        task: the task name the worker will run.
        args: a JSON object (dict) passed to the handler as keyword arguments.
        queue: the queue name (1-64 of ``A-Za-z0-9_.-``).
        priority: -1000 to 1000, higher runs first.
        run_at: timezone-aware time before which the job will not run.
        delay: seconds (or a timedelta) from now, by the database clock; not with run_at.
        max_attempts: attempts before the job fails for good (default 5).
        unique_key: while a live (queued or running) job holds this key, enqueue
            inserts nothing and returns that job's id.
        expires_at: timezone-aware time after which the job never starts; it ends
            ``cancelled`` with the reason ``expired``.
        ttl: seconds (or a timedelta) from now instead of ``expires_at``.
        depends_on: ids of jobs that must succeed first. The job waits (queued, not
            claimable) until all have succeeded; if one ends failed or cancelled, this
            job ends cancelled, naming it. Jobs of the same transaction may be named.
        concurrency_key: a key (for example a customer id) shared by jobs that a
            task's ``concurrency_per_key`` limits running at once.
        batch: an open batch from :func:`pgqueue.batch`; the job joins it (the
            same as ``batch.enqueue(...)``).
        tags, meta: up to 20 short strings (repeats dropped, the first kept) and a
            JSON object, stored with the job and kept in history (README, "Tags and meta").
        unique_for, debounce, on_conflict: how ``unique_key`` holds: for a period,
            finished or not, or pushing its pending job out (README, "Throttle and debounce").

    Raises:
        InvalidJobError: bad input; nothing was executed.
        QueueFullError: the queue is at its ``max_depth``; nothing ran that failed.
        SchemaNotReadyError: the pgqueue schema is missing (run ``pgqueue migrate``).
    Example::

        with conn.transaction():
            conn.execute("UPDATE accounts SET ...")
            pgqueue.enqueue(conn, "send_email", {"to": "a@example.com"}, queue="email")
    """
    check_sync(conn, async_twin="pgqueue.enqueue_async")
    job = _params.new_job(
        task, args, queue=queue, priority=priority, run_at=run_at, delay=delay,
        max_attempts=max_attempts, unique_key=unique_key, trace_context=None,
        expires_at=expires_at, ttl=ttl, depends_on=depends_on, concurrency_key=concurrency_key,
        batch_id=batch_id_of(batch), tags=tags, meta=meta, unique_for=unique_for,
        debounce=debounce, on_conflict=on_conflict)
    with enqueue_scope([job]) as scope:  # producer span, trace context, count
        return scope.done(run_steps(conn, enqueue_steps(scope.jobs[0])))  # type: ignore[no-any-return]


def enqueue_many(
    conn: SyncHandle, jobs: Iterable[JobSpec], *,
    batch: BatchBase | None = None,
) -> list[int]:
    """Insert many jobs in a few round trips; return their ids in input order.

    Each item is a mapping with the keys of :func:`enqueue` (``task`` required).
    A job whose ``unique_key`` a live job holds (or an earlier job of the same
    call) gets that job's id. Throttled and debounced jobs (``unique_for``,
    ``debounce``) are enqueued one statement each, after the others, in input
    order. All jobs are validated before anything runs; one
    bad job raises InvalidJobError naming its index, and nothing is inserted.
    When the jobs for a queue do not fit under its ``max_depth`` (all or nothing),
    QueueFullError is raised before any insert. With ``batch`` (an open batch from
    :func:`pgqueue.batch`) every job joins it.
    """
    check_sync(conn, async_twin="pgqueue.enqueue_many_async")
    with enqueue_scope(to_new_jobs(jobs, batch_id_of(batch))) as scope:
        return scope.done(run_steps(conn, enqueue_many_steps(scope.jobs)))  # type: ignore[no-any-return]


# --- shared with enqueue_async --------------------------------------------------


def batch_id_of(batch: object) -> int | None:
    """The id of an open batch for new jobs, or None; InvalidJobError for anything else."""
    if batch is None:
        return None
    if not isinstance(batch, BatchBase):
        raise InvalidJobError("batch must be a batch opened with pgqueue.batch(...), "
                              f"got {type(batch).__name__}")
    if batch.sealed:
        raise InvalidJobError(f"batch {batch.id} is sealed: no more jobs can join it")
    return batch.id


def to_new_jobs(jobs: Iterable[JobSpec], batch_id: int | None = None) -> list[NewJob]:
    """Validate every job spec; the error names the index of the bad one."""
    if isinstance(jobs, Mapping | str | bytes):
        raise InvalidJobError("jobs must be an iterable of job mappings, not a single value")
    result = []
    for index, spec in enumerate(jobs):
        if not isinstance(spec, Mapping):
            raise InvalidJobError(f"jobs[{index}] must be a mapping, got {type(spec).__name__}")
        if not spec.keys() <= _SPEC_KEYS:
            unknown = set(spec) - _SPEC_KEYS
            raise InvalidJobError(f"jobs[{index}] has unknown keys: {sorted(unknown, key=repr)}")
        if "task" not in spec:
            raise InvalidJobError(f"jobs[{index}] has no 'task'")
        try:
            result.append(_params.new_job(**spec, batch_id=batch_id))
        except InvalidJobError as exc:
            raise InvalidJobError(f"jobs[{index}]: {exc}") from None
    return result
