"""Controls over jobs and queues: cancel a job, pause and resume a queue, limit it.

Like enqueue, each call runs one statement on the caller's connection and never
commits: the effect (and the NOTIFY that tells workers) happens at the caller's
commit. A bad argument raises :class:`~pgqueue.errors.InvalidArgumentError`
before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from .._sql import query
from ..errors import InvalidArgumentError, InvalidJobError
from . import params as _params
from .connections import AsyncHandle, SyncHandle
from .steps import Steps, run_steps, run_steps_async

__all__ = [
    "CancelResult",
    "QueueLimits",
    "cancel",
    "cancel_async",
    "get_queue_limits",
    "pause_queue",
    "pause_queue_async",
    "resume_queue",
    "resume_queue_async",
    "set_concurrency_limit",
    "set_concurrency_limit_async",
    "set_max_depth",
    "set_max_depth_async",
    "set_rate_limit",
    "set_rate_limit_async",
    "set_warn_depth",
    "set_warn_depth_async",
]



class CancelResult(StrEnum):
    """What :func:`cancel` did."""

    CANCELLED = "cancelled"  # it was queued: now cancelled, in history
    REQUESTED = "requested"  # it is running: its worker is asked to stop it
    FINISHED = "finished"  # it had already finished: nothing changed
    NOT_FOUND = "not_found"  # no such job


def _job_params(job_id: object, reason: object) -> dict[str, Any]:
    if not isinstance(job_id, int) or isinstance(job_id, bool) or job_id < 1:
        raise InvalidArgumentError(f"job_id must be a positive int, got {job_id!r}")
    if not isinstance(reason, str) or not 1 <= len(reason) <= 1000 or "\x00" in reason:
        raise InvalidArgumentError("reason must be a string of 1 to 1000 characters")
    return {"job_id": job_id, "reason": reason}


def _value(name: str, params: dict[str, Any]) -> Steps:
    """One statement whose answer is one value; driven by the producer's runners."""
    rows = yield query(name), params
    return rows[0][0]


def cancel(conn: SyncHandle, job_id: int, *, reason: str = "cancelled by request") -> CancelResult:
    """Cancel a job: a queued job at once, a running one through its worker.

    A running ``async def`` handler is cancelled; a plain function sees
    ``JobContext.cancel_requested`` and can return early. Either way the job
    ends ``cancelled`` and is not retried. Cancelling a finished job changes
    nothing and returns ``CancelResult.FINISHED``.
    """
    return CancelResult(run_steps(conn, _value("job_cancel", _job_params(job_id, reason))))


async def cancel_async(conn: AsyncHandle, job_id: int, *,
                       reason: str = "cancelled by request") -> CancelResult:
    """:func:`cancel` for an AsyncConnection."""
    steps = _value("job_cancel", _job_params(job_id, reason))
    return CancelResult(await run_steps_async(conn, steps))


def pause_queue(conn: SyncHandle, queue: str) -> bool:
    """Pause a queue: workers claim nothing more from it (running jobs finish).

    The pause survives restarts and shows in ``queue_stats.paused``. Returns
    True if the queue was not paused before.
    """
    return _queue_call(conn, "queue_pause", queue)


def resume_queue(conn: SyncHandle, queue: str) -> bool:
    """Resume a paused queue and wake its workers; True if it was paused."""
    return _queue_call(conn, "queue_resume", queue)


async def pause_queue_async(conn: AsyncHandle, queue: str) -> bool:
    return await _queue_call_async(conn, "queue_pause", queue)


async def resume_queue_async(conn: AsyncHandle, queue: str) -> bool:
    return await _queue_call_async(conn, "queue_resume", queue)


def _queue_call(conn: SyncHandle, name: str, queue: str) -> bool:
    return bool(run_steps(conn, _value(name, {"queue": _queue_name(queue)})))


async def _queue_call_async(conn: AsyncHandle, name: str, queue: str) -> bool:
    return bool(await run_steps_async(conn, _value(name, {"queue": _queue_name(queue)})))


# --- limits across all workers ---------------------------------------------------------

_LIMIT_MAX = 1_000_000
_PERIOD_MAX = 366 * 86400.0


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """A queue's limits (None: no limit) and what they count right now.

    ``depth`` is the queue's live jobs (queued, scheduled, blocked and running),
    exact; ``max_depth`` and ``warn_depth`` its bounds (see :func:`set_max_depth`).
    """

    concurrency_limit: int | None
    running: int
    rate_limit: int | None
    rate_period_seconds: float | None
    claims_in_window: int
    max_depth: int | None = None
    warn_depth: int | None = None
    depth: int = 0


def set_concurrency_limit(conn: SyncHandle, queue: str, limit: int | None) -> None:
    """At most ``limit`` jobs of ``queue`` run at once, across every worker (None: no limit).

    Enforced when jobs are claimed, so it is never exceeded; lowering it stops
    no running job, new ones start once the queue is under it. Takes effect at
    the caller's commit and wakes the queue's workers.
    """
    run_steps(conn, _value("queue_set_concurrency_limit", _concurrency_params(queue, limit)))


async def set_concurrency_limit_async(conn: AsyncHandle, queue: str, limit: int | None) -> None:
    """:func:`set_concurrency_limit` for an AsyncConnection."""
    await run_steps_async(conn, _value("queue_set_concurrency_limit",
                                       _concurrency_params(queue, limit)))


def set_rate_limit(conn: SyncHandle, queue: str, limit: int | None,
                   per: timedelta | float | None = None) -> None:
    """At most ``limit`` jobs of ``queue`` start in any window of ``per`` (seconds or a
    timedelta), across every worker; ``limit=None`` removes the limit.

    Jobs over the limit wait queued; they do not fail. Example, a third-party
    API's quota of 100 calls a minute: ``set_rate_limit(conn, "api", 100, per=60)``.
    """
    run_steps(conn, _value("queue_set_rate_limit", _rate_params(queue, limit, per)))


async def set_rate_limit_async(conn: AsyncHandle, queue: str, limit: int | None,
                               per: timedelta | float | None = None) -> None:
    """:func:`set_rate_limit` for an AsyncConnection."""
    await run_steps_async(conn, _value("queue_set_rate_limit", _rate_params(queue, limit, per)))


def set_max_depth(conn: SyncHandle, queue: str, max_depth: int | None) -> None:
    """Refuse new jobs once ``queue`` holds ``max_depth`` live jobs (None: no bound).

    ``enqueue``, ``enqueue_many``, the SQL ``pgqueue.enqueue`` and ``POST /api/jobs``
    then raise :class:`~pgqueue.errors.QueueFullError` (HTTP 429) instead of
    inserting, leaving the caller's transaction usable. Live jobs are queued
    (ready, scheduled, blocked) and running ones. Under concurrent producers the
    depth may pass the bound by the jobs other transactions hold uncommitted
    (README, "Bounded queues"). Retries, snoozes, hand-backs, reclaims, periodic
    ticks and batch callbacks are never refused. Takes effect at the caller's commit.
    """
    run_steps(conn, _value("queue_set_max_depth", _depth_params(queue, max_depth, "max_depth")))


async def set_max_depth_async(conn: AsyncHandle, queue: str, max_depth: int | None) -> None:
    """:func:`set_max_depth` for an AsyncConnection."""
    await run_steps_async(conn, _value("queue_set_max_depth",
                                       _depth_params(queue, max_depth, "max_depth")))


def set_warn_depth(conn: SyncHandle, queue: str, warn_depth: int | None) -> None:
    """A soft bound: an enqueue that takes ``queue`` past ``warn_depth`` live jobs logs a
    warning and counts in ``pgqueue_enqueue_over_warn_depth_total``; nothing is refused.
    None removes it."""
    run_steps(conn, _value("queue_set_warn_depth",
                           _depth_params(queue, warn_depth, "warn_depth")))


async def set_warn_depth_async(conn: AsyncHandle, queue: str, warn_depth: int | None) -> None:
    """:func:`set_warn_depth` for an AsyncConnection."""
    await run_steps_async(conn, _value("queue_set_warn_depth",
                                       _depth_params(queue, warn_depth, "warn_depth")))


def get_queue_limits(conn: SyncHandle, queue: str) -> QueueLimits | None:
    """The queue's limits and current counts; None for a queue never used."""
    rows = run_steps(conn, _rows("queue_limits_get", {"queue": _queue_name(queue)}))
    if not rows:
        return None
    concurrency, running, rate, period, claims, max_depth, warn_depth, depth = rows[0]
    return QueueLimits(concurrency, int(running), rate, period, int(claims or 0),
                       max_depth, warn_depth, int(depth))


def _rows(name: str, params: dict[str, Any]) -> Steps:
    rows = yield query(name), params
    return rows


def _limit(value: object, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _LIMIT_MAX:
        raise InvalidArgumentError(f"{field} must be an int from 1 to {_LIMIT_MAX}, or None, "
                                   f"got {value!r}")
    return value


def _concurrency_params(queue: str, limit: object) -> dict[str, Any]:
    return {"queue": _queue_name(queue), "concurrency": _limit(limit, "concurrency limit")}


_DEPTH_MAX = 1_000_000_000


def _depth_params(queue: str, value: object, field: str) -> dict[str, Any]:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                              or not 1 <= value <= _DEPTH_MAX):
        raise InvalidArgumentError(f"{field} must be an int from 1 to {_DEPTH_MAX:,}, or "
                                   f"None, got {value!r}")
    return {"queue": _queue_name(queue), "depth": value}


def _rate_params(queue: str, limit: object, per: object) -> dict[str, Any]:
    rate = _limit(limit, "rate limit")
    if rate is None:
        if per is not None:
            raise InvalidArgumentError("per is only meaningful with a rate limit")
        return {"queue": _queue_name(queue), "rate": None, "period_seconds": None}
    seconds = _seconds(per)  # a timedelta or a finite number >= 0
    if seconds is None or not 0 < seconds <= _PERIOD_MAX:
        raise InvalidArgumentError(f"per must be more than 0 seconds and at most a year, "
                                   f"got {per!r}")
    return {"queue": _queue_name(queue), "rate": rate, "period_seconds": seconds}


def _queue_name(queue: object) -> str:
    """``queue`` if it is a valid queue name, else InvalidArgumentError."""
    try:
        return _params.validate_queue(queue)
    except InvalidJobError as exc:
        raise InvalidArgumentError(str(exc)) from None


def _seconds(per: object) -> float | None:
    try:
        return _params.duration_seconds(per, field="per")
    except InvalidJobError as exc:
        raise InvalidArgumentError(str(exc)) from None
