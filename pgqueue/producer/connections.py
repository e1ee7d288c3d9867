"""The caller's connection, whatever the application holds, and pgqueue's cursor on it.

Every call on the caller's side accepts a psycopg ``Connection`` or ``Cursor``,
a SQLAlchemy 2.x ``Session``, ``scoped_session`` or ``Connection``, or a Django
connection (``django.db.connection``, ``connections[alias]``), and their async
twins: psycopg's ``AsyncConnection`` / ``AsyncCursor`` and SQLAlchemy's
``AsyncSession``, ``async_scoped_session`` and ``AsyncConnection``.

Invariants:
- The statements run on the psycopg connection under the object, in the
  transaction the object is in. Where the object has none open, one is begun as
  its own library would on a first statement (SQLAlchemy's autobegin); Django's
  connection outside ``atomic()`` is in autocommit mode, as its ORM is.
- SQLAlchemy and Django are imported only when such an object is passed.
- pgqueue's cursor (:func:`own_cursor`) reads and writes with psycopg's default
  adapters, not the ones the connection has registered (Django's jsonb loader,
  an application's own), returns tuples, and prepares nothing on the server, so
  the same calls work through a pooler in transaction mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import psycopg
from psycopg.adapt import AdaptersMap
from psycopg.rows import AsyncRowFactory, RowFactory, tuple_row

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.utils.connection import ConnectionProxy
    from sqlalchemy.engine import Connection as SAConnection
    from sqlalchemy.ext.asyncio import AsyncConnection as SAAsyncConnection
    from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
    from sqlalchemy.orm import Session, scoped_session

__all__ = [
    "AsyncHandle",
    "SyncHandle",
    "async_connection",
    "check_async",
    "check_sync",
    "own_async_cursor",
    "own_cursor",
    "sync_connection",
]

SyncHandle: TypeAlias = (
    "psycopg.Connection[Any] | psycopg.Cursor[Any] | Session | scoped_session[Any]"
    " | SAConnection | BaseDatabaseWrapper | ConnectionProxy"
)
"""What a sync call accepts as ``conn``."""

AsyncHandle: TypeAlias = (
    "psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any] | AsyncSession"
    " | async_scoped_session[Any] | SAAsyncConnection"
)
"""What an async call accepts as ``conn``."""

_SYNC_ACCEPTED = ("a psycopg Connection or Cursor, a SQLAlchemy Session or Connection, "
                  "or a Django connection")
_ASYNC_ACCEPTED = ("a psycopg AsyncConnection or AsyncCursor, or a SQLAlchemy AsyncSession "
                   "or AsyncConnection")
_SWITCH_DRIVER = (
    "pgqueue runs on psycopg 3 only: with SQLAlchemy, use a 'postgresql+psycopg://' URL; "
    "Django 4.2 and later use psycopg 3 whenever it is installed (pgqueue installs it)"
)


class _Cursor(psycopg.Cursor[Any]):
    """A cursor with psycopg's default adapters, whatever its connection registered."""

    __slots__ = ("_defaults",)

    def __init__(self, conn: psycopg.Connection[Any], *, row_factory: RowFactory[Any]) -> None:
        self._defaults = AdaptersMap(psycopg.adapters)
        super().__init__(conn, row_factory=row_factory)

    @property
    def adapters(self) -> AdaptersMap:
        return self._defaults


class _AsyncCursor(psycopg.AsyncCursor[Any]):
    """:class:`_Cursor` for an AsyncConnection."""

    __slots__ = ("_defaults",)

    def __init__(self, conn: psycopg.AsyncConnection[Any], *,
                 row_factory: AsyncRowFactory[Any]) -> None:
        self._defaults = AdaptersMap(psycopg.adapters)
        super().__init__(conn, row_factory=row_factory)

    @property
    def adapters(self) -> AdaptersMap:
        return self._defaults


def own_cursor(conn: psycopg.Connection[Any],
               row_factory: RowFactory[Any] = tuple_row) -> psycopg.Cursor[Any]:
    """pgqueue's cursor on ``conn``; execute on it with ``prepare=False``."""
    return _Cursor(conn, row_factory=row_factory)


def own_async_cursor(conn: psycopg.AsyncConnection[Any],
                     row_factory: AsyncRowFactory[Any] = tuple_row) -> psycopg.AsyncCursor[Any]:
    """:func:`own_cursor` for an AsyncConnection."""
    return _AsyncCursor(conn, row_factory=row_factory)


# --- which objects are accepted: checked without side effects -------------------------

def check_sync(conn: object, async_twin: str = "this call's _async twin") -> None:
    """TypeError unless ``conn`` is accepted by the sync calls; the message names
    what was passed, what is accepted, and ``async_twin`` for an async object."""
    if isinstance(conn, psycopg.Connection | psycopg.Cursor):
        return
    kind = _kind(conn)
    if kind in ("sqlalchemy", "django"):
        return
    raise TypeError(_refusal(conn, _SYNC_ACCEPTED, kind)
                    + f"; use {async_twin} for an async connection or session")


def check_async(conn: object, sync_twin: str = "this call's sync twin") -> None:
    """TypeError unless ``conn`` is accepted by the async calls."""
    if isinstance(conn, psycopg.AsyncConnection | psycopg.AsyncCursor):
        return
    kind = _kind(conn)
    if kind == "sqlalchemy-async":
        return
    raise TypeError(_refusal(conn, _ASYNC_ACCEPTED, kind)
                    + f"; use {sync_twin} for a sync connection or session")


def _kind(conn: object) -> str:
    module = type(conn).__module__
    if module.startswith("psycopg"):
        if module.startswith("psycopg2"):
            return "psycopg2"
        return "psycopg-async" if isinstance(conn, psycopg.AsyncConnection
                                             | psycopg.AsyncCursor) else "psycopg-sync"
    if module.startswith("sqlalchemy."):
        return _sqlalchemy_kind(conn)
    if module.startswith("django.") and hasattr(conn, "ensure_connection"):
        return "django"
    return "other"


def _sqlalchemy_kind(conn: object) -> str:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_scoped_session
    from sqlalchemy.orm import Session, scoped_session

    if isinstance(conn, Session | scoped_session | Connection):
        return "sqlalchemy"
    if isinstance(conn, AsyncSession | async_scoped_session | AsyncConnection):
        return "sqlalchemy-async"
    return "sqlalchemy-other"


def _refusal(conn: object, accepted: str, kind: str) -> str:
    message = f"conn must be {accepted}, got {_name(conn)}"
    if kind == "psycopg2":
        return f"{message}: {_SWITCH_DRIVER}"
    if kind == "sqlalchemy-other":
        return (f"{message}: pass session.connection() or an engine.connect() connection, "
                "whose transaction decides the job (an Engine has none)")
    return message


def _name(conn: object) -> str:
    cls = type(conn)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


# --- the psycopg connection under the object --------------------------------------------

def sync_connection(conn: object, *, begin: bool = True) -> psycopg.Connection[Any]:
    """The psycopg connection under an accepted sync object (:func:`check_sync`).

    With ``begin``, a SQLAlchemy object with no transaction open begins one, as
    its first statement would.
    """
    if isinstance(conn, psycopg.Connection):
        return conn
    if isinstance(conn, psycopg.Cursor):
        return conn.connection
    check_sync(conn)
    driver = _django_driver(conn) if _kind(conn) == "django" else _sqlalchemy_driver(conn, begin)
    if not isinstance(driver, psycopg.Connection):
        raise TypeError(f"the database driver under {_name(conn)} is {_name(driver)}: "
                        f"{_SWITCH_DRIVER}")
    return driver


async def async_connection(conn: object, *, begin: bool = True) -> psycopg.AsyncConnection[Any]:
    """The psycopg AsyncConnection under an accepted async object (:func:`check_async`)."""
    if isinstance(conn, psycopg.AsyncConnection):
        return conn
    if isinstance(conn, psycopg.AsyncCursor):
        return conn.connection
    check_async(conn)
    from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

    sa_conn: Any = conn
    if isinstance(conn, AsyncSession | async_scoped_session):
        sa_conn = await conn.connection()
    if begin and not sa_conn.in_transaction():
        await sa_conn.begin()
    driver = (await sa_conn.get_raw_connection()).driver_connection
    if not isinstance(driver, psycopg.AsyncConnection):
        raise TypeError(f"the database driver under {_name(conn)} is {_name(driver)}: "
                        f"{_SWITCH_DRIVER}")
    return driver


def _sqlalchemy_driver(conn: Any, begin: bool) -> Any:
    from sqlalchemy.orm import Session, scoped_session

    if isinstance(conn, Session | scoped_session):
        conn = conn.connection()  # begins the session's transaction if none is open
    elif begin and not conn.in_transaction():
        conn.begin()
    return conn.connection.driver_connection


def _django_driver(conn: Any) -> Any:
    if conn.vendor != "postgresql":
        raise TypeError(f"the Django database {conn.alias!r} is {conn.vendor}, not PostgreSQL")
    conn.validate_no_broken_transaction()
    conn.ensure_connection()
    return conn.connection
