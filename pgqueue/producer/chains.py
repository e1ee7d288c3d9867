"""Chains: jobs that run one after another, enqueued in one call.

``chain(conn, [a, b, c])`` enqueues ``a``, then ``b`` depending on ``a``, then
``c`` depending on ``b``: ``b`` becomes claimable only once ``a`` has
succeeded, and if ``a`` ends failed or cancelled, ``b`` and ``c`` end
cancelled, naming the dependency (see ``pgqueue.settle_blocked``).

Invariants:
- Like :func:`pgqueue.enqueue_many`, nothing is committed here and every spec
  is validated before the first statement, so a bad spec raises
  :class:`~pgqueue.errors.InvalidJobError` (naming its index) and leaves the
  caller's transaction usable.
- The ids are reserved first (``job_ids_reserve``), so each job's
  ``depends_on`` names the previous job before anything is inserted; the jobs
  then go in with one insert and one linking statement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .._sql import query
from ..errors import InvalidJobError
from .connections import AsyncHandle, SyncHandle
from .enqueue import JobSpec, enqueue_many_steps, to_new_jobs
from .hooks import enqueue_scope
from .params import NewJob
from .steps import Steps, check_async, check_sync, run_steps, run_steps_async

__all__ = ["chain", "chain_async"]


def chain(conn: SyncHandle,
          jobs: Iterable[JobSpec]) -> list[int]:
    """Enqueue jobs that run in order, each after the previous one succeeded.

    Args:
        conn: the caller's psycopg ``Connection`` or ``Cursor``; never committed.
        jobs: job specs as for :func:`pgqueue.enqueue_many` (``task`` required).
            A spec may name further ``depends_on`` ids of its own; the job then
            waits for those too. ``unique_key`` is refused: a taken key would
            leave a hole in the chain.

    Returns:
        The new jobs' ids, in chain order.

    Raises:
        InvalidJobError: a bad spec (named by its index); nothing was executed.
        SchemaNotReadyError: the pgqueue schema is missing.

    Example::

        with conn.transaction():
            fetch, resize, publish = pgqueue.chain(conn, [
                {"task": "fetch", "args": {"url": url}},
                {"task": "resize", "args": {"url": url}},
                {"task": "publish", "args": {"url": url}},
            ])
    """
    check_sync(conn, async_twin="pgqueue.chain_async")
    with enqueue_scope(_validate(jobs)) as scope:
        return scope.done(run_steps(conn, chain_steps(scope.jobs)))  # type: ignore[no-any-return]


async def chain_async(conn: AsyncHandle,
                      jobs: Iterable[JobSpec]) -> list[int]:
    """:func:`chain` for an ``AsyncConnection``; same arguments and errors."""
    check_async(conn, sync_twin="pgqueue.chain")
    with enqueue_scope(_validate(jobs)) as scope:
        return scope.done(await run_steps_async(conn, chain_steps(scope.jobs)))  # type: ignore[no-any-return]


def _validate(jobs: Iterable[JobSpec]) -> list[NewJob]:
    new_jobs = to_new_jobs(jobs)
    for index, job in enumerate(new_jobs):
        if job.unique_key is not None:
            raise InvalidJobError(
                f"jobs[{index}]: a chained job cannot have a unique_key (a taken key "
                "would leave a hole in the chain)")
    return new_jobs


def chain_steps(jobs: list[NewJob]) -> Steps:
    """Reserve ids, make each job depend on the previous one, insert them all."""
    if not jobs:
        return []
    # The room is checked by enqueue_many_steps, as the ids are given.
    rows = yield query("job_ids_reserve"), {"n": len(jobs), "queues": []}
    ids = rows[0][0]
    linked = [jobs[0]] + [
        dataclasses.replace(job, depends_on=tuple(sorted({*(job.depends_on or ()), before})))
        for job, before in zip(jobs[1:], ids, strict=False)
    ]
    return (yield from enqueue_many_steps(linked, ids))
