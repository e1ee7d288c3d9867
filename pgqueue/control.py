"""Controls over jobs and queues: cancel a job, pause and resume a queue.

Like enqueue, each call runs one statement on the caller's connection and never
commits: the effect (and the NOTIFY that tells workers) happens at the caller's
commit.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import psycopg

from ._params import validate_queue
from ._sql import query
from .errors import InvalidJobError
from .producer import Steps, run_steps
from .producer_async import run_steps_async

__all__ = [
    "CancelResult",
    "cancel",
    "cancel_async",
    "pause_queue",
    "pause_queue_async",
    "resume_queue",
    "resume_queue_async",
]

Conn = psycopg.Connection[Any] | psycopg.Cursor[Any]
AsyncConn = psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any]


class CancelResult(StrEnum):
    """What :func:`cancel` did."""

    CANCELLED = "cancelled"  # it was queued: now cancelled, in history
    REQUESTED = "requested"  # it is running: its worker is asked to stop it
    FINISHED = "finished"  # it had already finished: nothing changed
    NOT_FOUND = "not_found"  # no such job


def _job_params(job_id: object, reason: object) -> dict[str, Any]:
    if not isinstance(job_id, int) or isinstance(job_id, bool) or job_id < 1:
        raise InvalidJobError(f"job_id must be a positive int, got {job_id!r}")
    if not isinstance(reason, str) or not 1 <= len(reason) <= 1000 or "\x00" in reason:
        raise InvalidJobError("reason must be a string of 1 to 1000 characters")
    return {"job_id": job_id, "reason": reason}


def _value(name: str, params: dict[str, Any]) -> Steps:
    """One statement whose answer is one value; driven by the producer's runners."""
    rows = yield query(name), params
    return rows[0][0]


def cancel(conn: Conn, job_id: int, *, reason: str = "cancelled by request") -> CancelResult:
    """Cancel a job: a queued job at once, a running one through its worker.

    A running ``async def`` handler is cancelled; a plain function sees
    ``JobContext.cancel_requested`` and can return early. Either way the job
    ends ``cancelled`` and is not retried. Cancelling a finished job changes
    nothing and returns ``CancelResult.FINISHED``.
    """
    return CancelResult(run_steps(conn, _value("job_cancel", _job_params(job_id, reason))))


async def cancel_async(conn: AsyncConn, job_id: int, *,
                       reason: str = "cancelled by request") -> CancelResult:
    """:func:`cancel` for an AsyncConnection."""
    steps = _value("job_cancel", _job_params(job_id, reason))
    return CancelResult(await run_steps_async(conn, steps))


def pause_queue(conn: Conn, queue: str) -> bool:
    """Pause a queue: workers claim nothing more from it (running jobs finish).

    The pause survives restarts and shows in ``queue_stats.paused``. Returns
    True if the queue was not paused before.
    """
    return _queue_call(conn, "queue_pause", queue)


def resume_queue(conn: Conn, queue: str) -> bool:
    """Resume a paused queue and wake its workers; True if it was paused."""
    return _queue_call(conn, "queue_resume", queue)


async def pause_queue_async(conn: AsyncConn, queue: str) -> bool:
    return await _queue_call_async(conn, "queue_pause", queue)


async def resume_queue_async(conn: AsyncConn, queue: str) -> bool:
    return await _queue_call_async(conn, "queue_resume", queue)


def _queue_call(conn: Conn, name: str, queue: str) -> bool:
    return bool(run_steps(conn, _value(name, {"queue": validate_queue(queue)})))


async def _queue_call_async(conn: AsyncConn, name: str, queue: str) -> bool:
    return bool(await run_steps_async(conn, _value(name, {"queue": validate_queue(queue)})))
