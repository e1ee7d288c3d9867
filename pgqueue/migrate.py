"""Apply pgqueue's schema migrations, or print them as plain SQL.

Invariant: each migration runs in its own transaction that first takes the
migration advisory lock, re-reads the applied versions, and records its own
version; so re-running is a no-op and concurrent migrators are safe.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import pq

from ._sql import migrations, query
from .errors import MigrationError, SchemaNotReadyError

__all__ = ["check_schema", "latest_version", "migrate", "migration_sql", "schema_version"]


def latest_version() -> int:
    """The newest migration this version of pgqueue ships."""
    return migrations()[-1].version


def migrate(conn: psycopg.Connection[Any], *, in_transaction: bool = False) -> list[int]:
    """Apply every pending migration; return the versions applied (maybe none).

    ``conn`` must have no transaction in progress: each migration commits on its
    own. With ``in_transaction=True`` the migrations run instead inside the
    transaction of ``conn`` (begun if none is yet), each under a savepoint, and
    commit or roll back with it: for a tool that owns the transaction, such as
    an Alembic revision (:mod:`pgqueue.contrib.alembic`); ``conn`` must not be in
    autocommit mode then, and the migration lock is held until that transaction
    ends. Raises MigrationError if a migration fails; the failed migration left
    nothing behind, earlier ones stay applied (or, in the caller's transaction,
    stay until it rolls back).
    """
    if in_transaction:
        if conn.autocommit:
            raise MigrationError(
                "migrate(in_transaction=True) needs a connection that is not in autocommit "
                "mode: the migrations join its transaction")
        conn.execute(query("migration_lock"))  # begins the transaction if none was yet
    elif conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise MigrationError(
            "migrate() needs a connection with no transaction in progress: "
            "each migration commits on its own"
        )
    applied: list[int] = []
    for migration in migrations():
        try:
            with conn.transaction():
                conn.execute(query("migration_lock"))
                conn.execute(query("migration_table_create"))
                done = {row[0] for row in conn.execute(query("migration_versions"))}
                if migration.version in done:
                    continue
                conn.execute(migration.sql)
                conn.execute(
                    query("migration_record"),
                    {"version": migration.version, "name": migration.name},
                )
        except psycopg.Error as exc:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} failed: {exc}"
            ) from exc
        applied.append(migration.version)
    return applied


def migration_sql() -> str:
    """Every migration as one SQL script, for teams with their own schema tool.

    Each migration is wrapped in a transaction that records its version, so the
    database ends in the same state as after :func:`migrate`.
    """
    parts = [
        "-- pgqueue schema migrations. Apply in order; each block is one transaction.\n",
        "BEGIN;\n" + query("migration_table_create") + "COMMIT;\n",
    ]
    for m in migrations():
        parts.append(
            f"\n-- migration {m.version:04d}_{m.name}\nBEGIN;\n{m.sql.rstrip()}\n"
            f"INSERT INTO pgqueue.migrations (version, name) VALUES ({m.version}, '{m.name}');\n"
            "COMMIT;\n"
        )
    return "".join(parts)


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The newest migration applied to the database; 0 before the first."""
    row = conn.execute(query("migration_table_exists")).fetchone()
    if not row or not row[0]:
        return 0
    versions = [r[0] for r in conn.execute(query("migration_versions"))]
    return max(versions, default=0)


def check_schema(conn: psycopg.Connection[Any]) -> None:
    """Raise SchemaNotReadyError unless the database has every migration applied."""
    current = schema_version(conn)
    if current < latest_version():
        raise SchemaNotReadyError(
            f"the database's pgqueue schema is at version {current}, this pgqueue needs "
            f"{latest_version()}: run 'pgqueue migrate'"
        )
