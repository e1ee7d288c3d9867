"""Actions on every job with given tags: cancel them, retry them, count them first.

Invariants:
- Like every control, each call runs on the caller's connection and never
  commits. The work is done in batches of :data:`BATCH_SIZE` ids, one statement
  to pick a batch (newest first, through the tag indexes) and one to act on it:
  on an autocommit connection every batch commits on its own, so a cancel of a
  large tag holds few locks at a time; inside a transaction all of it commits or
  none.
- Cancel goes through ``pgqueue.cancel`` job by job (queued: cancelled at once;
  running: its worker is asked to stop it), retry through ``pgqueue.retry_jobs``
  (failed or cancelled jobs only, each keeps its id, a job whose unique key a
  live job holds stays as it is): the same statements the dashboard's bulk
  actions run, so a job by tag ends exactly as it would by id.
- Jobs without the tags are never touched. A bad filter raises
  :class:`~pgqueue.errors.InvalidArgumentError` before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._sql import query
from ..errors import InvalidArgumentError, InvalidJobError
from . import params as _params
from .connections import AsyncHandle, SyncHandle
from .steps import Steps, run_steps, run_steps_async
from .tag_filter import TagFilter, tag_filter

__all__ = ["BATCH_SIZE", "CancelCounts", "TaggedCounts", "cancel_jobs", "cancel_jobs_async",
           "count_tagged", "retry_jobs", "retry_jobs_async"]

BATCH_SIZE = 500
DEFAULT_REASON = "cancelled by request"


@dataclass(frozen=True, slots=True)
class CancelCounts:
    """What :func:`cancel_jobs` did."""

    cancelled: int
    """Queued jobs now cancelled, in history."""
    requested: int
    """Running jobs whose workers are asked to stop them."""

    @property
    def total(self) -> int:
        return self.cancelled + self.requested


@dataclass(frozen=True, slots=True)
class TaggedCounts:
    """Jobs with the tags now: what a cancel (queued, running) or a retry would touch."""

    queued: int
    running: int
    retryable: int
    """Failed or cancelled, in history (a live unique key may still hold some back)."""


def cancel_jobs(conn: SyncHandle, *, tags: list[str] | tuple[str, ...],
                tags_mode: str = "all", queue: str | None = None,
                reason: str = DEFAULT_REASON) -> CancelCounts:
    """Cancel every live job with ``tags`` (all of them, or any with ``tags_mode="any"``),
    of ``queue`` if given: queued jobs at once, running ones through their workers.

    Example::

        with psycopg.connect(dsn, autocommit=True) as conn:
            done = pgqueue.cancel_jobs(conn, tags=["import:2025-01"])
            print(done.cancelled, done.requested)
    """
    steps = _cancel_steps(_filter_params(tags, tags_mode, queue), _reason(reason))
    return run_steps(conn, steps)  # type: ignore[no-any-return]


async def cancel_jobs_async(conn: AsyncHandle, *, tags: list[str] | tuple[str, ...],
                            tags_mode: str = "all", queue: str | None = None,
                            reason: str = DEFAULT_REASON) -> CancelCounts:
    """:func:`cancel_jobs` for an AsyncConnection."""
    steps = _cancel_steps(_filter_params(tags, tags_mode, queue), _reason(reason))
    return await run_steps_async(conn, steps)  # type: ignore[no-any-return]


def retry_jobs(conn: SyncHandle, *, tags: list[str] | tuple[str, ...],
               tags_mode: str = "all", queue: str | None = None) -> int:
    """Queue again every failed or cancelled job with ``tags`` (all of them, or any with
    ``tags_mode="any"``), of ``queue`` if given; return how many. Each keeps its id.

    Jobs whose unique key a live job holds are left as they are (as :func:`pgqueue.retry`
    leaves them).
    """
    return int(run_steps(conn, _retry_steps(_filter_params(tags, tags_mode, queue))))


async def retry_jobs_async(conn: AsyncHandle, *, tags: list[str] | tuple[str, ...],
                           tags_mode: str = "all", queue: str | None = None) -> int:
    """:func:`retry_jobs` for an AsyncConnection."""
    return int(await run_steps_async(conn, _retry_steps(_filter_params(tags, tags_mode,
                                                                        queue))))


def count_tagged(conn: SyncHandle, *, tags: list[str] | tuple[str, ...],
                 tags_mode: str = "all", queue: str | None = None) -> TaggedCounts:
    """How many jobs with ``tags`` are queued, running, and retryable in history now
    (what the CLI asks to confirm before a cancel or retry by tag)."""
    return run_steps(conn, _count_steps(  # type: ignore[no-any-return]
        _filter_params(tags, tags_mode, queue)))


def checked_filter(tags: object, tags_mode: object = "all") -> TagFilter:
    """A tag filter that must be given (bulk actions need one)."""
    wanted = tag_filter(tags, tags_mode)
    if wanted is None:
        raise InvalidArgumentError("tags must name at least one tag")
    return wanted


def _filter_params(tags: object, tags_mode: object, queue: object) -> dict[str, Any]:
    params: dict[str, Any] = {**checked_filter(tags, tags_mode).params(), "queue": None}
    if queue is not None:
        try:
            params["queue"] = _params.validate_queue(queue)
        except InvalidJobError as exc:
            raise InvalidArgumentError(str(exc)) from None
    return params


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not 1 <= len(reason) <= 1000 or "\x00" in reason:
        raise InvalidArgumentError("reason must be a string of 1 to 1000 characters")
    return reason


def _in_batches(select: str, params: dict[str, Any], action: str,
                action_params: dict[str, Any]) -> Steps:
    """Pick up to BATCH_SIZE matching ids (below the last batch's smallest), run
    ``action`` on them, until none is left; return every row the actions answered."""
    answered: list[tuple[Any, ...]] = []
    before: int | None = None
    while True:
        rows = yield query(select), {**params, "before_id": before, "limit": BATCH_SIZE}
        ids = [int(row[0]) for row in rows]
        if ids:
            answered += yield query(action), {**action_params, "ids": ids}
        if len(ids) < BATCH_SIZE:
            return answered
        before = ids[-1]


def _cancel_steps(params: dict[str, Any], reason: str) -> Steps:
    outcomes = yield from _in_batches("job_tagged_live", params, "job_cancel_many",
                                      {"reason": reason})
    counts = {"cancelled": 0, "requested": 0}
    for outcome, jobs in outcomes:
        if outcome in counts:
            counts[outcome] += int(jobs)
    return CancelCounts(**counts)


def _retry_steps(params: dict[str, Any]) -> Steps:
    moved = yield from _in_batches("job_tagged_retryable", params, "job_retry_many", {})
    return sum(int(row[0]) for row in moved)


def _count_steps(params: dict[str, Any]) -> Steps:
    rows = yield query("job_tagged_count"), params
    queued, running, retryable = rows[0]
    return TaggedCounts(int(queued), int(running), int(retryable))
