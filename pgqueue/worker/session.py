"""One database connection owned by one worker service, reconnected on demand.

A service calls :meth:`Session.fetch`; on a connection-level error the
connection is dropped and the error raised, and the next call connects anew.
The service's loop decides how long to back off.

Behind a transaction-mode pooler (``pooled=True``) consecutive statements may
run on different server sessions, and other clients' statements on this one:
such a session prepares nothing server-side (psycopg's ``prepare_threshold``
off) and sets no session setting; each statement stands alone.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import set_json_loads

from .._sql import query

__all__ = ["PoolerClash", "Session", "is_connection_error", "is_data_error"]

Conn = psycopg.AsyncConnection[TupleRow]


_decode = json.JSONDecoder().decode


def _loads(data: str | bytes) -> Any:
    # Job args arrive as UTF-8 bytes: json.loads(bytes) first sniffs the
    # encoding; decoding here saves about 1 µs a job.
    return _decode(data if isinstance(data, str) else data.decode())


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection (not the statement) failed."""
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | OSError)


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the database (or the driver, encoding parameters)
    refused the values a statement carried: retrying the same values fails
    again, other values would pass.

    SQLSTATE classes 22 (data exception: bad text, out-of-range numbers and
    dates), 23 (a constraint) and 54 (a program limit: a value too large or too
    deep); a str the driver cannot encode. Checked before
    :func:`is_connection_error`: psycopg maps class 54 to OperationalError.
    """
    if isinstance(exc, UnicodeError | psycopg.DataError | psycopg.IntegrityError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(exc, psycopg.Error) and sqlstate is not None and sqlstate[:2] == "54"


class PoolerClash(psycopg.InterfaceError):
    """A prepared statement of this session was missing, or another's was there:
    the server session changed under it, as behind a transaction-mode pooler.

    A connection error, so the session is dropped and connects anew; its message
    says what to set."""

    def __init__(self, exc: psycopg.Error) -> None:
        super().__init__(
            f"{exc.diag.message_primary or exc}: the server session changed between "
            "statements, as behind a pooler in transaction mode (PgBouncer); start the "
            "worker with --pooler transaction (PGQUEUE_POOLER=transaction, "
            "Worker(pooler='transaction'))")


_CLASHES = (psycopg.errors.DuplicatePreparedStatement, psycopg.errors.InvalidSqlStatementName)


class Session:
    """A lazily (re)connected autocommit connection: each statement commits alone."""

    def __init__(self, dsn: str, *, name: str, connect_timeout: float = 10.0,
                 pooled: bool = False) -> None:
        self.dsn = dsn
        self.name = name
        self.pooled = pooled
        self._connect_timeout = connect_timeout
        self._conn: Conn | None = None
        # Several services share a session (claims and maintenance): one connects,
        # the others wait for its connection rather than opening their own.
        self._connecting = asyncio.Lock()

    async def connection(self) -> Conn:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        async with self._connecting:
            return await self._connect()

    async def _connect(self) -> Conn:
        if self._conn is None or self._conn.closed:
            options: dict[str, Any] = {"prepare_threshold": None} if self.pooled else {}
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=int(self._connect_timeout),
                application_name=f"pgqueue-{self.name}", **options,
            )
            set_json_loads(_loads, conn)
            if not self.pooled:  # its SET would stay on a server session others share
                try:
                    await conn.execute(query("session_setup"))
                except BaseException:
                    await conn.close()
                    raise
            self._conn = conn
        return self._conn

    async def fetch(self, name: str, params: dict[str, Any] | None = None) -> list[TupleRow]:
        """Run the named query; return its rows (empty for statements without)."""
        conn = await self.connection()
        try:
            cur = await conn.execute(query(name), params)
            return await cur.fetchall() if cur.description else []
        except _CLASHES as exc:
            await self.close()
            raise PoolerClash(exc) from exc
        except BaseException as exc:
            if (is_connection_error(exc) and not is_data_error(exc)) \
                    or not isinstance(exc, Exception):
                # Cancelled or broken mid-statement: the connection state is unknown.
                await self.close()
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except Exception:  # closing a broken connection may fail; it is gone anyway
                pass
