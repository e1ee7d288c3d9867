"""Completion in the handler's transaction (``ctx.transaction()``): a handler's
database writes and its job's ``succeeded`` outcome commit together, or neither.

Invariant: the transaction a handler opens commits only after the fenced outcome
statement (``job_complete_many``, one outcome: the job is still ``running``
under this worker and this attempt's claim token) applied the outcome inside
it. Every other end rolls it back: the handler raised, timed out, was cancelled
or interrupted, returned another outcome, the fence matched no row (a stale
attempt: the job was reclaimed), or the statement or the commit failed.

An attempt whose transaction committed has its outcome written: the completer
only reports it (``Outcome.written``). A commit whose answer was lost (the
connection failed during COMMIT) is neither known written nor known rolled
back: the attempt is dropped, no longer held nor heartbeated. If the commit did
not happen, the reaper returns the job after the stall timeout and the retry
finds none of the handler's writes; if it did, the job is finished and gone.

The connections and their pools are :mod:`.handler_pools`'s.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq
from psycopg.rows import TupleRow

from .._sql import query
from ..errors import TransactionUseError
from .completer import outcome_params
from .executor import Outcome
from .handler_pools import (
    USE_AFTER,
    USE_BLOCK,
    USE_FREE,
    GuardedAsyncConnection,
    GuardedConnection,
    HandlerPools,
)
from .session import is_connection_error

if TYPE_CHECKING:
    from ..types import JobContext

__all__ = ["HandlerTransaction"]

# A transaction's life: idle -> open (the handler's block) -> pending (the block
# ended normally; the attempt's outcome decides) -> done (committed or rolled back).
_IDLE, _OPEN, _PENDING, _DONE = "idle", "open", "pending", "done"

Fail = Callable[[BaseException], Outcome]
"""Makes the outcome of an attempt whose handler succeeded but whose transaction
could not commit (a retry, or failed on the last attempt)."""

# The first statement of the attempt's transaction, run as the block opens: psycopg
# begins the transaction before it (public behaviour, no private call).
_BEGIN_NOW = "SELECT 1"


class HandlerTransaction:
    """One attempt's transaction: ``async with`` (async handlers) or ``with``
    (sync handlers) gives the connection; the worker ends it (:meth:`settle`)."""

    __slots__ = ("_async", "_conn", "_ctx", "_ended", "_lock", "_pools", "_state")

    def __init__(self, pools: HandlerPools, ctx: JobContext) -> None:
        self._pools = pools
        self._ctx = ctx
        self._lock = threading.Lock()
        self._state = _IDLE
        self._ended = False  # the attempt is over: a late block rolls back
        self._async = False
        self._conn: Any = None

    def _begin(self, *, is_async: bool) -> None:
        with self._lock:
            if self._ended:
                raise TransactionUseError(
                    "ctx.transaction() is opened after its attempt ended (timed out, "
                    "cancelled or stopped)")
            if self._state != _IDLE:
                raise TransactionUseError("ctx.transaction() can be opened once per attempt")
            self._state = _OPEN
            self._async = is_async

    # --- async handlers --------------------------------------------------------

    async def __aenter__(self) -> psycopg.AsyncConnection[TupleRow]:
        self._begin(is_async=True)
        try:
            pool = await self._pools.async_pool()
            conn = await pool.getconn()
        except BaseException:
            self._state = _DONE
            raise
        try:
            # BEGIN now (psycopg sends it before the first statement of a
            # connection that is not in autocommit): a conn.transaction() in the
            # block is then a savepoint, never a transaction of its own that
            # commits, and SQL that ends the transaction shows (see _check_open).
            await conn.execute(_BEGIN_NOW)
        except BaseException:
            self._state = _DONE
            await conn.close()
            await pool.putconn(conn)
            raise
        conn._pgqueue_use = USE_BLOCK
        self._conn = conn
        return conn

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self._conn._pgqueue_use = USE_AFTER
            self._state = _PENDING
            return
        self._state = _DONE
        await self._rollback_async()

    async def _rollback_async(self) -> None:
        conn, self._conn = self._conn, None
        conn._pgqueue_use = USE_FREE
        try:
            await conn.rollback()
        except Exception:  # broken: the server rolls its transaction back
            await conn.close()
        except BaseException:
            await conn.close()  # cancelled mid-rollback: discarded
            raise
        finally:
            await self._putconn_async(conn)

    async def _putconn_async(self, conn: GuardedAsyncConnection) -> None:
        await self._pools.put_async(conn)

    # --- sync handlers (on a worker thread) ------------------------------------

    def __enter__(self) -> psycopg.Connection[TupleRow]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise TransactionUseError(
                "'with ctx.transaction()' would block the event loop of an async handler: "
                "use 'async with ctx.transaction() as conn'")
        self._begin(is_async=False)
        pool = self._pools.sync_pool()
        try:
            conn = pool.getconn()
        except BaseException:
            self._state = _DONE
            raise
        try:
            conn.execute(_BEGIN_NOW)  # BEGIN now: see __aenter__
        except BaseException:
            self._state = _DONE
            conn.close()
            pool.putconn(conn)
            raise
        conn._pgqueue_use = USE_BLOCK
        with self._lock:
            self._conn = conn
        return conn

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: object) -> None:
        with self._lock:
            if exc is None and not self._ended:
                self._conn._pgqueue_use = USE_AFTER
                self._state = _PENDING
                return
            self._state = _DONE
        self._rollback_sync()

    def _rollback_sync(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        conn._pgqueue_use = USE_FREE
        try:
            conn.rollback()
        except Exception:
            conn.close()
        finally:
            self._putconn_sync(conn)

    def _putconn_sync(self, conn: GuardedConnection) -> None:
        self._pools.put_sync(conn)

    # --- the worker's side -----------------------------------------------------

    async def settle(self, outcome: Outcome | None, threads: Executor,
                     fail: Fail) -> Outcome | None:
        """End the transaction after the attempt: commit it with ``outcome`` if
        that is a success (fenced), else roll it back. ``outcome`` None: the
        attempt was interrupted (rolled back; the caller re-raises). Returns the
        outcome for the completer, ``written`` set when it needs no write."""
        with self._lock:
            self._ended = True
            state = self._state
            late = state == _OPEN and not self._async  # a sync handler still inside
            if state in (_PENDING, _OPEN) and not late:
                self._state = _DONE
        if state not in (_PENDING, _OPEN) or late:
            # Never opened, or rolled back at the block's end; or a timed-out sync
            # handler still in its block, whose end rolls back.
            return outcome
        if outcome is None or outcome.outcome != "succeeded" or state == _OPEN:
            if self._async:
                await self._rollback_async()
            else:
                await asyncio.get_running_loop().run_in_executor(threads, self._rollback_sync)
            return outcome
        if self._async:
            kind, detail = await self._commit_async(outcome)
        else:
            kind, detail = await asyncio.get_running_loop().run_in_executor(
                threads, self._commit_sync, outcome)
        if isinstance(detail, BaseException):
            if kind == "raise":
                raise detail
            return fail(detail)
        outcome.written = kind
        outcome.follow_up = bool(detail)
        return outcome

    async def _commit_async(self, outcome: Outcome) -> tuple[str, object]:
        conn, self._conn = self._conn, None
        conn._pgqueue_use = USE_FREE
        try:
            try:
                _check_open(conn)
                text, params = _outcome_statement(outcome, self._ctx.worker_id)
                cur = psycopg.AsyncRawCursor(conn)
                await cur.execute(text, params)
                rows = await cur.fetchall()
            except Exception as exc:
                await _rollback_quietly(conn.rollback(), conn)
                return "failed", exc
            if not rows:
                await _rollback_quietly(conn.rollback(), conn)
                return "rolled_back", False
            try:
                await conn.commit()
            except Exception as exc:
                if is_connection_error(exc):
                    return "unknown", False
                return "failed", exc  # refused at commit (a deferred check): rolled back
            return "committed", rows[0][1]
        except BaseException:
            await conn.close()  # cancelled mid-statement: its state is unknown
            raise
        finally:
            await self._putconn_async(conn)

    def _commit_sync(self, outcome: Outcome) -> tuple[str, object]:
        with self._lock:
            conn, self._conn = self._conn, None
        conn._pgqueue_use = USE_FREE
        try:
            try:
                _check_open(conn)
                text, params = _outcome_statement(outcome, self._ctx.worker_id)
                rows = psycopg.RawCursor(conn).execute(text, params).fetchall()
            except Exception as exc:
                _rollback_sync_quietly(conn)
                return "failed", exc
            if not rows:
                _rollback_sync_quietly(conn)
                return "rolled_back", False
            try:
                conn.commit()
            except Exception as exc:
                if is_connection_error(exc):
                    return "unknown", False
                return "failed", exc
            return "committed", rows[0][1]
        except BaseException as exc:
            conn.close()
            return "raise", exc
        finally:
            self._putconn_sync(conn)


@functools.cache
def _raw_query(name: str) -> tuple[str, tuple[str, ...]]:
    """``name``'s text with each ``%(param)s`` made ``$n`` and ``%%`` made ``%``,
    and the parameter names in ``$n`` order, for a raw cursor: psycopg then
    parses nothing per call (it does not cache its parse of a statement over
    4 KiB, and job_complete_many is 8 KiB: 0.18 ms a job here)."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[0] == "%%":
            return "%"
        if match[1] not in order:
            order.append(match[1])
        return f"${order.index(match[1]) + 1}"

    return re.sub(r"%%|%\((\w+)\)s", number, query(name)), tuple(order)


def _outcome_statement(outcome: Outcome, worker_id: str) -> tuple[str, list[Any]]:
    text, names = _raw_query("job_complete_many")
    params = outcome_params([outcome], worker_id)
    return text, [params[name] for name in names]


def _check_open(conn: GuardedAsyncConnection | GuardedConnection) -> None:
    """Refuse to write the outcome unless the block's transaction is still open."""
    if conn.autocommit:
        raise TransactionUseError("the handler's connection was switched to autocommit: its "
                                  "writes committed without the outcome")
    if conn.pgconn.transaction_status == pq.TransactionStatus.IDLE:
        raise TransactionUseError("the handler ended the transaction of ctx.transaction() "
                                  "itself (COMMIT or ROLLBACK as SQL): its writes did not "
                                  "commit with the outcome")


async def _rollback_quietly(rollback: Any, conn: GuardedAsyncConnection) -> None:
    try:
        await rollback
    except Exception:  # the server rolls back a broken connection's transaction
        await conn.close()


def _rollback_sync_quietly(conn: GuardedConnection) -> None:
    try:
        conn.rollback()
    except Exception:
        conn.close()
