"""Bounded queues on the producer side: what an enqueue does with a queue's room.

The database counts (``pgqueue.try_enqueue`` for one job, ``pgqueue.queue_rooms``
before a bulk insert, in the statement that reserves the ids); this module
turns its answer into :class:`~pgqueue.errors.QueueFullError` or a warning.

Invariants:
- A refusal is decided before anything is inserted, and no statement fails:
  the caller's transaction stays usable.
- Nothing here waits for room or takes a lock: an enqueue inside the caller's
  transaction never blocks on a full queue.
- A ``warn_depth`` only logs and tells :func:`~pgqueue.producer.hooks.on_queue_depth`
  listeners; it never refuses.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import QueueFullError
from .hooks import QueueDepth, announce_depth
from .params import NewJob

__all__ = ["check_room", "check_rooms", "queues_of"]

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
