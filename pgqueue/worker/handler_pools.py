"""The connections behind ``ctx.transaction()``: two small pools per worker, and
connections that know whether a handler's block holds them.

Invariant: a connection lent to a handler refuses ``commit()``, ``rollback()``
and autocommit while its block is open (pgqueue ends the transaction, with the
job's outcome in it), and every statement once the block is closed. The pools
(psycopg_pool) open on first use, each of at most ``size`` connections: asyncio
connections for ``async with`` in async handlers, threaded ones for ``with`` in
sync handlers (which run on worker threads). Behind a transaction pooler a
transaction keeps one server session to its end, which is all a handler's
transaction needs; only nothing may be prepared server-side.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ..errors import TransactionUseError

__all__ = ["GuardedAsyncConnection", "GuardedConnection", "HandlerPools"]

# How a handler's connection stands, in its _pgqueue_use attribute.
USE_FREE = None         # pgqueue's own: pooled, or writing the outcome
USE_BLOCK = "block"  # the handler's, inside its block
USE_AFTER = "after"     # the block is closed: nothing more from the handler

_AFTER_MESSAGE = ("the connection of ctx.transaction() is used after its block: "
                  "statements belong inside the block")
_END_MESSAGE = ("ctx.transaction() commits (with the job's outcome) or rolls back by itself: "
                "{} is refused inside its block")


def _check_statement(conn: Any) -> None:
    if conn._pgqueue_use == USE_AFTER:
        raise TransactionUseError(_AFTER_MESSAGE)


def _check_end(conn: Any, what: str) -> None:
    if conn._pgqueue_use == USE_AFTER:
        raise TransactionUseError(_AFTER_MESSAGE)
    if conn._pgqueue_use == USE_BLOCK:
        raise TransactionUseError(_END_MESSAGE.format(what))


class GuardedAsyncConnection(psycopg.AsyncConnection[TupleRow]):
    """An asyncio connection that knows whether a handler's block holds it."""

    _pgqueue_use: str | None = USE_FREE

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

    _pgqueue_use: str | None = USE_FREE

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
        self._kwargs: dict[str, Any] = {"application_name": "pgqueue-handler"}
        if pooled:
            self._kwargs["prepare_threshold"] = None
        self._async: AsyncConnectionPool[GuardedAsyncConnection] | None = None
        self._async_opening: asyncio.Lock | None = None
        self._sync: ConnectionPool[GuardedConnection] | None = None
        self._sync_opening = threading.Lock()

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

    async def put_async(self, conn: GuardedAsyncConnection) -> None:
        """Give back a connection of :meth:`async_pool` (closed if the pool is)."""
        pool = self._async
        if pool is None:
            await conn.close()
        else:
            await pool.putconn(conn)

    def put_sync(self, conn: GuardedConnection) -> None:
        """Give back a connection of :meth:`sync_pool` (closed if the pool is)."""
        pool = self._sync
        if pool is None:
            conn.close()
        else:
            pool.putconn(conn)

    async def close(self) -> None:
        """Close both pools; a connection still out is closed when it comes back."""
        apool, self._async = self._async, None
        if apool is not None:
            await apool.close()
        with self._sync_opening:
            spool, self._sync = self._sync, None
        if spool is not None:
            await asyncio.to_thread(spool.close)
