"""pytest plugin: a migrated database per test session, a connection per test.

Registered by pgqueue's ``pytest11`` entry point, so installing pgqueue makes
it available to every pytest run. It is inert until a test asks for one of its
fixtures: loading it adds one option and two fixtures, and imports what
``import pgqueue`` imports (the producer side), never the worker, the drain or
a connection. ``-p no:pgqueue`` turns it off altogether.

- ``pgqueue_dsn`` (session): the DSN of a fresh database, created on the
  server named by ``--pgqueue-dsn``, else ``$PGQUEUE_TEST_DSN``, else the
  ``pgqueue_dsn`` ini option; migrated, and dropped when the session ends.
- ``pgqueue_conn``: a psycopg connection to it, not in autocommit, whose
  transaction is rolled back when the test ends, so each test starts empty.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import psycopg

__all__ = ["pgqueue_conn", "pgqueue_dsn"]

ENV_VAR = "PGQUEUE_TEST_DSN"
_HELP = ("PostgreSQL server for pgqueue's test fixtures (a DSN; a database of its own is "
         f"created there per session and dropped after). Default: ${ENV_VAR}, then the "
         "pgqueue_dsn ini option.")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgqueue")
    group.addoption("--pgqueue-dsn", default=None, help=_HELP)
    parser.addini("pgqueue_dsn", help=_HELP, default="")


def server_dsn(config: pytest.Config) -> str | None:
    """The server DSN given by option, environment or ini file, if any."""
    value = config.getoption("pgqueue_dsn") or os.environ.get(ENV_VAR) \
        or config.getini("pgqueue_dsn")
    return str(value) if value else None


def _database(server: str, name: str, statement: str) -> None:
    import psycopg
    from psycopg import sql

    from .._sql import query

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL(query(statement)).format(name=sql.Identifier(name)),
                     prepare=False)


@pytest.fixture(scope="session")
def pgqueue_dsn(pytestconfig: pytest.Config) -> Iterator[str]:
    """DSN of this session's own migrated database, dropped at the end."""
    import psycopg
    from psycopg import conninfo

    from ..migrate import migrate

    server = server_dsn(pytestconfig)
    if server is None:
        pytest.fail(f"pgqueue_dsn: no PostgreSQL server given; pass --pgqueue-dsn=DSN or set "
                    f"{ENV_VAR}", pytrace=False)
    name = f"pgqueue_test_{uuid.uuid4().hex[:12]}"
    _database(server, name, "database_create")
    try:
        dsn = conninfo.make_conninfo(server, dbname=name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            migrate(conn)
        yield dsn
    finally:
        _database(server, name, "database_drop")


@pytest.fixture
def pgqueue_conn(pgqueue_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the session's database; the test's transaction is rolled back."""
    import psycopg

    conn = psycopg.connect(pgqueue_dsn)
    try:
        yield conn
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()
