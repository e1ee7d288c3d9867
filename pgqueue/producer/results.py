"""A finished job's result: read it, or wait for it.

Invariants:
- :func:`result` runs one read on the caller's connection and never commits.
- :func:`wait_for_result` LISTENs on ``pgqueue_finished`` *before* its first
  look at the job, so a job finishing between a look and the wait still wakes
  it; and it looks again every ``poll_interval`` seconds whatever arrives,
  because not every way a job ends is announced (the reaper failing a stalled
  job, the leader expiring one).
- LISTEN only takes effect at commit and notifications arrive only between
  transactions, so waiting needs an autocommit connection with no transaction
  open; pgqueue never commits the caller's transaction to get one.
"""

from __future__ import annotations

import math
import time
from typing import Any

import psycopg

from .._sql import query
from ..errors import InvalidArgumentError, JobFailedError, JobNotFoundError, ResultNotReadyError
from .connections import (
    AsyncHandle,
    SyncHandle,
    async_connection,
    check_async,
    check_sync,
    sync_connection,
)
from .steps import Steps, run_steps, run_steps_async

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_WAIT_TIMEOUT",
    "result",
    "result_async",
    "wait_for_result",
    "wait_for_result_async",
]

DEFAULT_WAIT_TIMEOUT = 30.0
DEFAULT_POLL_INTERVAL = 1.0
FINISHED_CHANNEL = "pgqueue_finished"
_LIVE = ("queued", "running")
_MAX_JOB_ID = 2**63 - 1

Row = tuple[Any, ...]


def result(conn: SyncHandle, job_id: int) -> Any:
    """The JSON value the handler of job ``job_id`` returned (None if it returned None).

    Raises:
        ResultNotReadyError: the job is queued or running (``.state`` says which).
        JobFailedError: the job failed for good or was cancelled (``.state``,
            ``.last_error``, ``.attempts``).
        JobNotFoundError: no job has this id (not committed yet, or pruned).
        InvalidArgumentError: ``job_id`` is not a positive integer.

    Example::

        with psycopg.connect(dsn) as conn:
            total = pgqueue.result(conn, job_id)["total"]
    """
    check_sync(conn, async_twin="pgqueue.result_async")
    return _judge(job_id, run_steps(conn, _lookup(_check_job_id(job_id))))


async def result_async(conn: AsyncHandle,
                       job_id: int) -> Any:
    """:func:`result` for an AsyncConnection."""
    check_async(conn, sync_twin="pgqueue.result")
    return _judge(job_id, await run_steps_async(conn, _lookup(_check_job_id(job_id))))


def wait_for_result(conn: SyncHandle, job_id: int, *,
                    timeout: float = DEFAULT_WAIT_TIMEOUT,
                    poll_interval: float = DEFAULT_POLL_INTERVAL) -> Any:
    """Block until job ``job_id`` finishes, then return its result as :func:`result` does.

    ``conn`` must be in autocommit mode with no transaction open, for example
    ``psycopg.connect(dsn, autocommit=True)``: the wait LISTENs on it (and
    UNLISTENs at the end). A finishing job wakes the wait at once through
    ``NOTIFY pgqueue_finished``; the job is also looked at every
    ``poll_interval`` seconds in case its end was not announced.

    Raises:
        TimeoutError: the job was still queued or running after ``timeout`` seconds.
        JobFailedError, JobNotFoundError: as :func:`result`.
        InvalidArgumentError: ``conn`` is not autocommit or is in a transaction, or
            a bad ``job_id``, ``timeout`` or ``poll_interval``.

    Example::

        with psycopg.connect(dsn, autocommit=True) as conn:
            job_id = pgqueue.enqueue(conn, "render", {"page": 3})
            pdf_url = pgqueue.wait_for_result(conn, job_id, timeout=60)
    """
    _check_wait_args(job_id, timeout, poll_interval)
    check_sync(conn, async_twin="pgqueue.wait_for_result_async")
    conn = sync_connection(conn, begin=False)
    _check_listening_conn(conn.autocommit, conn.info.transaction_status)
    deadline = time.monotonic() + timeout
    conn.execute(query("job_finished_listen"), prepare=False)
    try:
        while True:
            row = run_steps(conn, _lookup(job_id))
            if row is None or row[0] not in _LIVE:
                return _judge(job_id, row)
            left = deadline - time.monotonic()
            if left <= 0:
                raise _timed_out(job_id, timeout, row[0])
            end = time.monotonic() + min(left, poll_interval)
            while (wait := end - time.monotonic()) > 0:
                if any(_announces(n, job_id) for n in conn.notifies(timeout=wait, stop_after=1)):
                    break
    finally:
        if not conn.closed and not conn.broken:
            conn.execute(query("job_finished_unlisten"), prepare=False)


async def wait_for_result_async(conn: AsyncHandle, job_id: int, *,
                                timeout: float = DEFAULT_WAIT_TIMEOUT,
                                poll_interval: float = DEFAULT_POLL_INTERVAL) -> Any:
    """:func:`wait_for_result` for an AsyncConnection (autocommit, no transaction open)."""
    _check_wait_args(job_id, timeout, poll_interval)
    check_async(conn, sync_twin="pgqueue.wait_for_result")
    conn = await async_connection(conn, begin=False)
    _check_listening_conn(conn.autocommit, conn.info.transaction_status)
    deadline = time.monotonic() + timeout
    await conn.execute(query("job_finished_listen"), prepare=False)
    try:
        while True:
            row = await run_steps_async(conn, _lookup(job_id))
            if row is None or row[0] not in _LIVE:
                return _judge(job_id, row)
            left = deadline - time.monotonic()
            if left <= 0:
                raise _timed_out(job_id, timeout, row[0])
            end = time.monotonic() + min(left, poll_interval)
            while (wait := end - time.monotonic()) > 0:
                woken = False
                async for notify in conn.notifies(timeout=wait, stop_after=1):
                    woken = woken or _announces(notify, job_id)
                if woken:
                    break
    finally:
        if not conn.closed and not conn.broken:
            await conn.execute(query("job_finished_unlisten"), prepare=False)


# --- shared, without I/O ---------------------------------------------------------------


def _lookup(job_id: int) -> Steps:
    rows = yield query("job_result_get"), {"job_id": job_id}
    return rows[0] if rows else None


def _judge(job_id: int, row: Row | None) -> Any:
    if row is None:
        raise JobNotFoundError(job_id)
    state, value, last_error, attempts = row
    if state == "succeeded":
        return value
    if state in _LIVE:
        raise ResultNotReadyError(job_id, state)
    raise JobFailedError(job_id, state, last_error, attempts)


def _announces(notify: psycopg.Notify, job_id: int) -> bool:
    """Whether a pgqueue_finished payload may mean that ``job_id`` finished."""
    if notify.channel != FINISHED_CHANNEL:
        return False
    return notify.payload == "*" or str(job_id) in notify.payload.split(",")


def _timed_out(job_id: int, timeout: float, state: str) -> TimeoutError:
    return TimeoutError(f"job {job_id} did not finish within {timeout:g} s; it is still {state}")


def _check_job_id(job_id: object) -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int) or not 1 <= job_id <= _MAX_JOB_ID:
        raise InvalidArgumentError(f"job_id must be a positive integer, got {job_id!r}")
    return job_id


def _check_wait_args(job_id: object, timeout: object, poll_interval: object) -> None:
    _check_job_id(job_id)
    if not _seconds(timeout) or timeout < 0:  # type: ignore[operator]
        raise InvalidArgumentError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
    if not _seconds(poll_interval) or poll_interval <= 0:  # type: ignore[operator]
        raise InvalidArgumentError(
            f"poll_interval must be a number of seconds > 0, got {poll_interval!r}")


def _seconds(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_listening_conn(autocommit: bool, status: psycopg.pq.TransactionStatus) -> None:
    if not autocommit:
        raise InvalidArgumentError(
            "waiting for a result needs an autocommit connection: LISTEN takes effect only "
            "at commit, and pgqueue never commits yours; use "
            "psycopg.connect(dsn, autocommit=True), a connection of its own")
    if status != psycopg.pq.TransactionStatus.IDLE:
        raise InvalidArgumentError(
            "waiting for a result needs a connection with no transaction open "
            "(notifications arrive only between transactions); call it outside "
            "'with conn.transaction()'")
