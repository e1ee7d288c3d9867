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

Connections come from two small pools per worker (psycopg_pool), each opened on
first use and of at most the worker's concurrency: asyncio connections for
``async with`` in async handlers, threaded ones for ``with`` in sync handlers
(which run on worker threads). A connection handed to a handler refuses
``commit()``, ``rollback()`` and autocommit while the block is open, and every
statement after it.
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
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .._sql import query
from ..errors import TransactionUseError
from .completer import outcome_params
from .executor import Outcome
from .session import is_connection_error

if TYPE_CHECKING:
    from ..types import JobContext

__all__ = ["HandlerPools", "HandlerTransaction"]

# How a handler's connection stands, in its _pgqueue_use attribute.
_FREE = None         # pgqueue's own: pooled, or writing the outcome
_IN_BLOCK = "block"  # the handler's, inside its block
_AFTER = "after"     # the block is closed: nothing more from the handler

_AFTER_MESSAGE = ("the connection of ctx.transaction() is used after its block: "
                  "statements belong inside the block")
_END_MESSAGE = ("ctx.transaction() commits (with the job's outcome) or rolls back by itself: "
                "{} is refused inside its block")


def _check_statement(conn: Any) -> None:
    if conn._pgqueue_use == _AFTER:
        raise TransactionUseError(_AFTER_MESSAGE)


def _check_end(conn: Any, what: str) -> None:
    if conn._pgqueue_use == _AFTER:
        raise TransactionUseError(_AFTER_MESSAGE)
    if conn._pgqueue_use == _IN_BLOCK:
        raise TransactionUseError(_END_MESSAGE.format(what))


class GuardedAsyncConnection(psycopg.AsyncConnection[TupleRow]):
    """An asyncio connection that knows whether a handler's block holds it."""

    _pgqueue_use: str | None = _FREE

    def cursor(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        _check_statement(self)
        return super().cursor(*args, **kwargs)

    async def commit(self) -> None:
        _check_end(self, "commit()")
        await super().commit()

    async def rollback(self) -> None:
        _check_end(self, "rollback()")
        await super().rollback()

    async def set_autocommit(self, value: bool) -> None:
        _check_end(self, "autocommit")
        await super().set_autocommit(value)


class GuardedConnection(psycopg.Connection[TupleRow]):
    """The threaded twin of :class:`GuardedAsyncConnection`."""

    _pgqueue_use: str | None = _FREE

    def cursor(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        _check_statement(self)
        return super().cursor(*args, **kwargs)

    def commit(self) -> None:
        _check_end(self, "commit()")
        super().commit()

    def rollback(self) -> None:
        _check_end(self, "rollback()")
        super().rollback()

    def set_autocommit(self, value: bool) -> None:  # the autocommit setter's too
        _check_end(self, "autocommit")
        super().set_autocommit(value)


class HandlerPools:
    """The worker's pools of handler connections, opened on first use, closed at stop."""

    def __init__(self, dsn: str, worker_id: str, *, size: int, pooled: bool = False) -> None:
        self.dsn = dsn
        self.worker_id = worker_id
        self.size = size
        # Behind a transaction pooler a transaction keeps one server session to
        # its end, which is all a handler's transaction needs; only nothing may be
        # prepared server-side.
        self._kwargs: dict[str, Any] = {"application_name": "pgqueue-handler"}
        if pooled:
            self._kwargs["prepare_threshold"] = None
        self._async: AsyncConnectionPool[GuardedAsyncConnection] | None = None
        self._async_opening: asyncio.Lock | None = None
        self._sync: ConnectionPool[GuardedConnection] | None = None
        self._sync_opening = threading.Lock()

    def transaction(self, ctx: JobContext) -> HandlerTransaction:
        """A transaction for the attempt of ``ctx`` (see ``JobContext.transaction``)."""
        return HandlerTransaction(self, ctx)

    async def async_pool(self) -> AsyncConnectionPool[GuardedAsyncConnection]:
        if self._async is not None:
            return self._async
        if self._async_opening is None:
            self._async_opening = asyncio.Lock()
        async with self._async_opening:
            if self._async is None:
                pool: AsyncConnectionPool[GuardedAsyncConnection] = AsyncConnectionPool(
                    self.dsn, min_size=0, max_size=self.size, open=False,
                    connection_class=GuardedAsyncConnection, kwargs=self._kwargs,
                    name="pgqueue-handler-async")
                await pool.open()
                self._async = pool
        return self._async

    def sync_pool(self) -> ConnectionPool[GuardedConnection]:
        with self._sync_opening:
            if self._sync is None:
                pool: ConnectionPool[GuardedConnection] = ConnectionPool(
                    self.dsn, min_size=0, max_size=self.size, open=False,
                    connection_class=GuardedConnection, kwargs=self._kwargs,
                    name="pgqueue-handler-sync")
                pool.open()
                self._sync = pool
            return self._sync

    async def close(self) -> None:
        """Close both pools; a connection still out is closed when it comes back."""
        apool, self._async = self._async, None
        if apool is not None:
            await apool.close()
        with self._sync_opening:
            spool, self._sync = self._sync, None
        if spool is not None:
            await asyncio.to_thread(spool.close)


# A transaction's life: idle -> open (the handler's block) -> pending (the block
# ended normally; the attempt's outcome decides) -> done (committed or rolled back).
_IDLE, _OPEN, _PENDING, _DONE = "idle", "open", "pending", "done"

Fail = Callable[[BaseException], Outcome]
"""Makes the outcome of an attempt whose handler succeeded but whose transaction
could not commit (a retry, or failed on the last attempt)."""


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
            # BEGIN now (psycopg would send it before the first statement anyway):
            # a conn.transaction() in the block is then a savepoint, never a
            # transaction of its own that commits, and SQL that ends the
            # transaction shows (see _check_open).
            await conn.wait(conn._start_query())
        except BaseException:
            self._state = _DONE
            await conn.close()
            await pool.putconn(conn)
            raise
        conn._pgqueue_use = _IN_BLOCK
        self._conn = conn
        return conn

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self._conn._pgqueue_use = _AFTER
            self._state = _PENDING
            return
        self._state = _DONE
        await self._rollback_async()

    async def _rollback_async(self) -> None:
        conn, self._conn = self._conn, None
        conn._pgqueue_use = _FREE
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
        pool = self._pools._async
        if pool is None:  # closed meanwhile
            await conn.close()
        else:
            await pool.putconn(conn)

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
            conn.wait(conn._start_query())  # BEGIN now: see __aenter__
        except BaseException:
            self._state = _DONE
            conn.close()
            pool.putconn(conn)
            raise
        conn._pgqueue_use = _IN_BLOCK
        with self._lock:
            self._conn = conn
        return conn

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: object) -> None:
        with self._lock:
            if exc is None and not self._ended:
                self._conn._pgqueue_use = _AFTER
                self._state = _PENDING
                return
            self._state = _DONE
        self._rollback_sync()

    def _rollback_sync(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        conn._pgqueue_use = _FREE
        try:
            conn.rollback()
        except Exception:
            conn.close()
        finally:
            self._putconn_sync(conn)

    def _putconn_sync(self, conn: GuardedConnection) -> None:
        pool = self._pools._sync
        if pool is None:
            conn.close()
        else:
            pool.putconn(conn)

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
        conn._pgqueue_use = _FREE
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
        conn._pgqueue_use = _FREE
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
    4 KiB, and job_complete_many is 8: 0.18 ms a job here)."""
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
