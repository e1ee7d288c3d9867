"""Enqueue jobs on the caller's own connection, inside the caller's transaction.

Invariants:
- pgqueue never commits, rolls back or opens a connection here: the caller's
  transaction decides whether the job exists.
- All input is validated (``params``) before the first statement runs, so a bad
  call raises :class:`~pgqueue.errors.InvalidJobError` and leaves the caller's
  transaction usable.

The database steps are written once, as generators that yield ``(sql, params)``
and receive the fetched rows (:mod:`pgqueue.producer.steps`); :mod:`pgqueue.producer.enqueue_async`
drives the same generators on an ``AsyncConnection``. What an enqueue reports
goes through the producer's own hook points (:mod:`pgqueue.producer.hooks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal, NotRequired, TypedDict

from .._sql import query
from ..errors import InvalidJobError, QueueFullError
from . import params as _params
from .backpressure import check_room, check_rooms, queues_of
from .connections import SyncHandle
from .hooks import enqueue_scope
from .params import DEFAULT_QUEUE, NewJob
from .steps import CopyRows, Steps, check_sync, run_steps
from .tags import Tags, pg_text_array

__all__ = ["BatchBase", "JobSpec", "OnConflict", "enqueue", "enqueue_many"]

#: ``on_conflict``: what a debounced enqueue does to the pending job of its key.
OnConflict = Literal["keep", "replace"]

# The COPY column types of job_copy.sql, in order. The args column is typed
# "jsonb" and receives the JSON text params made: _JsonTextDumper (:mod:`.steps`) sends it in
# jsonb's binary format (a version byte, then the text) without parsing it again.
_COPY_TYPES = ("int8", "text", "text", "jsonb", "int4", "timestamptz", "int4", "text",
               "timestamptz", "int8[]", "bool", "text", "int8", "text[]", "jsonb")


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
    conn: SyncHandle,
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
        tags: up to 20 short strings (1-100 characters each) to find the job by;
            repeats are dropped, the first kept (a set is sorted). Kept in history.
        meta: a JSON object stored with the job (not passed to the handler),
            kept in history; handlers may add to it while they run.
        unique_for: with ``unique_key`` (throttle): seconds (or a timedelta)
            during which a job created with this key holds it, even once
            finished; enqueue returns that job's id and inserts nothing.
        debounce: with ``unique_key``: the job runs this long after the last
            enqueue of its key: a pending (queued) job of the key is pushed out
            and its id returned; when the key's job is running, a new job is
            enqueued. Not with ``run_at`` or ``delay``.
        on_conflict: ``"keep"`` (default) or, with ``debounce``, ``"replace"``:
            the pending job also takes this call's args, meta and tags.

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


def enqueue_steps(job: NewJob) -> Steps:
    if job.depends_on:
        yield from _check_dependencies([job], [])
    # One statement checks the queue's room and inserts (links dependencies itself).
    rows = yield query("job_try_enqueue"), _job_params(job)
    job_id, max_depth, warn_depth, depth = rows[0]
    check_room(job.queue, max_depth, warn_depth, depth, 1)  # raises when refused
    if job_id is None:
        raise QueueFullError(job.queue, max_depth, depth)
    return job_id


def _check_dependencies(jobs: list[NewJob], own_ids: list[int]) -> Steps:
    """Before any insert: every dependency must exist (or be one of ``own_ids``)."""
    deps = sorted({d for j in jobs for d in j.depends_on or ()})
    rows = yield query("job_dependencies_missing"), {"deps": deps, "own_ids": own_ids}
    if rows[0][0] is not None:
        raise InvalidJobError(f"depends_on names job {rows[0][0]}, which does not exist")


def _link_steps(jobs: list[NewJob], ids: list[int], inserted: set[int] | None = None) -> Steps:
    """After the insert: attach the new jobs that have dependencies to them."""
    linked = [i for i, j in zip(ids, jobs, strict=True)
              if j.depends_on and (inserted is None or i in inserted)]
    if linked:
        yield query("job_link_dependencies"), {"ids": linked}


def enqueue_many_steps(jobs: list[NewJob], ids: list[int] | None = None) -> Steps:
    """Insert ``jobs``; ``ids`` (reserved by the caller) when jobs name each other."""
    if not jobs:
        return []
    if any(j.keyed_mode for j in jobs):
        return (yield from _keyed_mode_steps(jobs, ids))
    has_deps = any(j.depends_on for j in jobs)
    if all(j.unique_key is None for j in jobs):
        return (yield from _copy_steps(jobs, ids, has_deps))
    if ids is None:
        rows = yield query("job_ids_reserve"), {"n": len(jobs), "queues": queues_of(jobs)}
        ids = rows[0][0]
        check_rooms(rows[0][1:], jobs)
    else:
        yield from room_steps(jobs)
    if has_deps:
        yield from _check_dependencies(jobs, ids)
    rows = yield query("job_insert_many"), {
        "ids": ids,
        "queues": [j.queue for j in jobs],
        "tasks": [j.task for j in jobs],
        "args": [j.args_json for j in jobs],
        "priorities": [j.priority for j in jobs],
        "run_ats": [j.run_at for j in jobs],
        "delays": [j.delay_seconds for j in jobs],
        "max_attempts": [j.max_attempts for j in jobs],
        "unique_keys": [j.unique_key for j in jobs],
        "trace_contexts": [j.trace_context for j in jobs],
        "expires_ats": [j.expires_at for j in jobs],
        "ttls": [j.ttl_seconds for j in jobs],
        "depends_ons": [_pg_array(j.depends_on) for j in jobs],
        "concurrency_keys": [j.concurrency_key for j in jobs],
        "batch_ids": [j.batch_id for j in jobs],
        "tags": [pg_text_array(j.tags) if j.tags else None for j in jobs],
        "metas": [j.meta_json for j in jobs],
    }
    if has_deps:
        yield from _link_steps(jobs, ids, {row[0] for row in rows})
    if len(rows) == len(jobs):
        return ids
    # Some unique keys were taken: by live jobs, or by an earlier job of this call.
    inserted = {row[0] for row in rows}
    skipped = [i for i, job_id in enumerate(ids) if job_id not in inserted]
    keys = sorted({key for i in skipped if (key := jobs[i].unique_key) is not None})
    rows = yield query("job_ids_by_unique_key"), {"unique_keys": keys}
    holders: dict[str, int] = dict(rows)  # type: ignore[arg-type]
    for i in skipped:
        key = jobs[i].unique_key
        if key in holders:
            ids[i] = holders[key]
        else:
            # The holder finished in between: the key is free again.
            ids[i] = yield from enqueue_steps(jobs[i])
            holders[key] = ids[i]  # type: ignore[index]
    return ids


def _keyed_mode_steps(jobs: list[NewJob], ids: list[int] | None) -> Steps:
    """Throttled and debounced jobs need the per-key lock: one statement each.

    The room of every queue is checked first, for all the jobs of the call; the
    others are inserted in bulk, then each keyed one, in input order, without a
    second check (``job_insert_keyed``), so a full queue still refuses all or nothing.
    """
    if ids is not None:
        raise InvalidJobError("jobs whose ids are reserved up front (a chain) cannot be "
                              "throttled or debounced")
    yield from room_steps(jobs)
    keyed = [i for i, j in enumerate(jobs) if j.keyed_mode]
    others = [j for j in jobs if not j.keyed_mode]
    others_ids = iter((yield from enqueue_many_steps(others)) if others else [])
    result = [0 if j.keyed_mode else next(others_ids) for j in jobs]
    keyed_jobs = [jobs[i] for i in keyed]
    if any(j.depends_on for j in keyed_jobs):
        yield from _check_dependencies(keyed_jobs, [])
    for i in keyed:
        rows = yield query("job_insert_keyed"), _job_params(jobs[i])
        result[i] = rows[0][0]
    return result


def room_steps(jobs: list[NewJob]) -> Steps:
    """The room check of jobs whose ids were reserved earlier (chains, batches)."""
    rows = yield query("queue_rooms_get"), {"queues": queues_of(jobs)}
    check_rooms(rows[0], jobs)


def _copy_steps(jobs: list[NewJob], ids: list[int] | None, has_deps: bool) -> Steps:
    """Without unique keys nothing can conflict: COPY the rows, ids known up front.

    delay and ttl count from the database clock. Rather than one more round trip
    or an unnest insert, the id reservation also returns the server's now() (the
    transaction's start time, the same value now() has in this transaction's
    later statements), and run_at and expires_at are computed from it here: the
    rows hold what job_insert_many would have computed. created_at is left to
    its default, like every column a producer role may not insert.
    """
    if ids is None:
        rows = yield query("job_ids_reserve_now"), {"n": len(jobs), "queues": queues_of(jobs)}
        ids = rows[0][0]
        check_rooms(rows[0][2:], jobs)
    else:
        yield from room_steps(jobs)
        rows = yield query("clock_now"), {}
    now: datetime = rows[0][1]
    if has_deps:
        yield from _check_dependencies(jobs, ids)
    data = []
    for job_id, j in zip(ids, jobs, strict=True):
        if j.run_at is not None:
            run_at = j.run_at
        elif j.delay_seconds:
            run_at = now + timedelta(seconds=j.delay_seconds)
        else:
            run_at = now
        expires_at = j.expires_at
        if expires_at is None and j.ttl_seconds is not None:
            expires_at = now + timedelta(seconds=j.ttl_seconds)
        data.append((job_id, j.queue, j.task, j.args_json, j.priority, run_at,
                     j.max_attempts, j.trace_context, expires_at,
                     list(j.depends_on) if j.depends_on else None,
                     True if j.depends_on else None, j.concurrency_key, j.batch_id,
                     list(j.tags), j.meta_json or "{}"))
    yield CopyRows(query("job_copy"), _COPY_TYPES, data)
    if has_deps:
        yield from _link_steps(jobs, ids)
    return ids


def _job_params(job: NewJob) -> dict[str, Any]:
    return {
        "task": job.task,
        "args": job.args_json,
        "queue": job.queue,
        "priority": job.priority,
        "run_at": job.run_at,
        "max_attempts": job.max_attempts,
        "unique_key": job.unique_key,
        "delay_seconds": job.delay_seconds,
        "trace_context": job.trace_context,
        "expires_at": job.expires_at,
        "ttl_seconds": job.ttl_seconds,
        "depends_on": _pg_array(job.depends_on),
        "concurrency_key": job.concurrency_key,
        "batch_id": job.batch_id,
        "tags": list(job.tags) if job.tags else None,
        "meta": job.meta_json,
        "unique_for_seconds": job.unique_for_seconds,
        "debounce_seconds": job.debounce_seconds,
        "on_conflict": "replace" if job.replace else None,
    }


def _pg_array(ids: tuple[int, ...] | None) -> str | None:
    """bigint[] as text: an array parameter inside an array parameter needs it."""
    return None if not ids else "{" + ",".join(map(str, ids)) + "}"
