"""The database steps of an enqueue: one job, many, and the checks around them.

Each is a generator of steps (:mod:`pgqueue.producer.steps`) that the sync and
async callers drive alike. The jobs arrive validated (:mod:`.params`).

Invariants:
- a queue's room is checked before anything is inserted: a refused call
  inserts nothing, whatever the path (one job, COPY, unnest, keyed jobs);
- a job whose unique key is taken gets the holder's id, in every path;
- throttled and debounced jobs go through ``pgqueue.insert_job`` one at a time,
  under the per-key lock it takes (migration 0015).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .._sql import query
from ..errors import InvalidJobError, QueueFullError
from .backpressure import check_room, check_rooms, queues_of
from .params import NewJob
from .steps import CopyRows, Steps
from .tags import pg_text_array

__all__ = ["enqueue_many_steps", "enqueue_steps", "job_params", "room_steps"]

# The COPY column types of job_copy.sql, in order. The args column is typed
# "jsonb" and receives the JSON text params made: _JsonTextDumper (:mod:`.steps`) sends it in
# jsonb's binary format (a version byte, then the text) without parsing it again.
_COPY_TYPES = ("int8", "text", "text", "jsonb", "int4", "timestamptz", "int4", "text",
               "timestamptz", "int8[]", "bool", "text", "int8", "text[]", "jsonb")


def enqueue_steps(job: NewJob) -> Steps:
    if job.depends_on:
        yield from _check_dependencies([job], [])
    # One statement checks the queue's room and inserts (links dependencies itself).
    rows = yield query("job_try_enqueue"), job_params(job)
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
        rows = yield query("job_insert_keyed"), job_params(jobs[i])
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


def job_params(job: NewJob) -> dict[str, Any]:
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
