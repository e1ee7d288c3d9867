"""Bounded queues on the producer side: what an enqueue does with a queue's room.

The database counts (``pgqueue.try_enqueue`` for one job, ``pgqueue.queue_rooms``
before a bulk insert, in the statement that reserves the ids); this module
turns its answer into :class:`~pgqueue.errors.QueueFullError` or a warning.

Invariants:
- A refusal is decided before anything is inserted, and no statement fails:
  the caller's transaction stays usable.
- Nothing an enqueue calls waits for room or takes a lock: an enqueue inside the
  caller's transaction never blocks on a full queue. :func:`wait_for_room` waits,
  and refuses to run inside a transaction.
- A ``warn_depth`` only logs and tells :func:`~pgqueue.producer.hooks.on_queue_depth`
  listeners; it never refuses.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg

from .._sql import query
from ..errors import InvalidArgumentError, InvalidJobError, QueueFullError
from . import params as _params
from .connections import AsyncHandle, SyncHandle, async_connection, sync_connection
from .hooks import QueueDepth, announce_depth
from .params import NewJob
from .steps import Steps, check_async, check_sync, run_steps, run_steps_async

__all__ = ["check_room", "check_rooms", "queues_of", "wait_for_room", "wait_for_room_async"]

DEFAULT_ROOM_POLL_SECONDS = 0.5

logger = logging.getLogger("pgqueue.producer")


def queues_of(jobs: Sequence[NewJob]) -> list[str]:
    """The distinct queues of ``jobs``, sorted: the parameter of the room check."""
    return sorted({job.queue for job in jobs})


def check_room(queue: str, max_depth: int | None, warn_depth: int | None,
               depth: int | None, adding: int) -> None:
    """Raise QueueFullError if ``adding`` jobs do not fit; warn past warn_depth."""
    if depth is None:
        return  # neither threshold: nothing was counted
    if max_depth is not None and depth + adding > max_depth:
        announce_depth(QueueDepth(queue, depth, adding, max_depth, warn_depth, refused=True))
        raise QueueFullError(queue, max_depth, depth, adding)
    if warn_depth is not None and depth + adding > warn_depth:
        logger.warning("enqueue took the queue past its warn_depth", extra={
            "queue": queue, "depth": depth, "adding": adding, "warn_depth": warn_depth,
            "max_depth": max_depth})
        announce_depth(QueueDepth(queue, depth, adding, max_depth, warn_depth, refused=False))


def check_rooms(row: Sequence[Any], jobs: Sequence[NewJob]) -> None:
    """Check every queue of a bulk insert from ``(queues, max_depths, warn_depths,
    depths)`` arrays (NULL when no queue of the batch has a threshold)."""
    queues, max_depths, warn_depths, depths = row
    if not queues:
        return
    adding = Counter(job.queue for job in jobs)
    rooms = list(zip(queues, max_depths, warn_depths, depths, strict=True))
    # Refusals first: a batch refused for one queue warns about none.
    for queue, max_depth, _, depth in rooms:
        if max_depth is not None:
            check_room(queue, max_depth, None, depth, adding[queue])
    for queue, _, warn_depth, depth in rooms:
        check_room(queue, None, warn_depth, depth, adding[queue])


# --- waiting for room, outside any transaction --------------------------------------


def wait_for_room(conn: SyncHandle, queue: str, *, timeout: float, jobs: int = 1,
                  poll_interval: float = DEFAULT_ROOM_POLL_SECONDS) -> bool:
    """Wait until ``queue`` has room for ``jobs`` more; False after ``timeout`` seconds.

    Only outside a transaction: ``conn`` must be in autocommit mode with none open
    (waiting inside one would hold its locks and its connection while workers drain).
    The queue is counted every ``poll_interval`` seconds. Room now is no promise:
    other producers may take it first, so the enqueue that follows can still raise
    QueueFullError. A queue without a max_depth always has room.

    Example::

        with psycopg.connect(dsn, autocommit=True) as conn:
            if pgqueue.wait_for_room(conn, "email", timeout=30):
                pgqueue.enqueue(conn, "send", {"to": to}, queue="email")
    """
    check_sync(conn, async_twin="pgqueue.wait_for_room_async")
    name = _check_wait(queue, timeout, jobs, poll_interval)
    raw = sync_connection(conn, begin=False)
    _check_idle(raw.autocommit, raw.info.transaction_status)
    deadline = time.monotonic() + timeout
    while not run_steps(raw, _full_steps(name, jobs)):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, poll_interval))
    return True


async def wait_for_room_async(conn: AsyncHandle, queue: str, *, timeout: float, jobs: int = 1,
                              poll_interval: float = DEFAULT_ROOM_POLL_SECONDS) -> bool:
    """:func:`wait_for_room` for an AsyncConnection."""
    check_async(conn, sync_twin="pgqueue.wait_for_room")
    name = _check_wait(queue, timeout, jobs, poll_interval)
    raw = await async_connection(conn, begin=False)
    _check_idle(raw.autocommit, raw.info.transaction_status)
    deadline = time.monotonic() + timeout
    while not await run_steps_async(raw, _full_steps(name, jobs)):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(left, poll_interval))
    return True


def _full_steps(queue: str, jobs: int) -> Steps:
    """True when ``jobs`` more fit under the queue's max_depth (or it has none)."""
    rows = yield query("queue_rooms_get"), {"queues": [queue]}
    names, max_depths, _, depths = rows[0]
    if not names or max_depths[0] is None:
        return True
    return bool(depths[0] + jobs <= max_depths[0])


def _check_wait(queue: object, timeout: object, jobs: object, poll_interval: object) -> str:
    if not _finite(timeout) or timeout < 0:  # type: ignore[operator]
        raise InvalidArgumentError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
    if not _finite(poll_interval) or poll_interval <= 0:  # type: ignore[operator]
        raise InvalidArgumentError(
            f"poll_interval must be a number of seconds > 0, got {poll_interval!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidArgumentError(f"jobs must be an int >= 1, got {jobs!r}")
    try:
        return _params.validate_queue(queue)
    except InvalidJobError as exc:
        raise InvalidArgumentError(str(exc)) from None


def _finite(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_idle(autocommit: bool, status: psycopg.pq.TransactionStatus) -> None:
    if not autocommit or status != psycopg.pq.TransactionStatus.IDLE:
        raise InvalidArgumentError(
            "wait_for_room runs only outside a transaction, on an autocommit connection "
            "(psycopg.connect(dsn, autocommit=True)): waiting inside one would hold its "
            "locks and its connection until workers drain the queue")
