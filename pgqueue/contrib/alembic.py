"""pgqueue's schema from an Alembic revision, for teams whose migrations Alembic owns.

A revision calls :func:`upgrade`, which runs pgqueue's own migrator
(:func:`pgqueue.migrate`) on the revision's connection, inside Alembic's
transaction: pgqueue's pending migrations and the ``alembic_version`` update
commit together, or not at all. Example revision body::

    from alembic import op

    from pgqueue.contrib import alembic as pgqueue_alembic

    def upgrade() -> None:
        pgqueue_alembic.upgrade(op)

    def downgrade() -> None:
        pass  # pgqueue's migrations only go forward; its schema stays

Later pgqueue releases bring new migrations: a new revision calling
:func:`upgrade` again applies them (and only them).
"""

from __future__ import annotations

from typing import Any

import psycopg

from ..errors import MigrationError
from ..migrate import migrate

__all__ = ["upgrade"]


def upgrade(op: Any) -> list[int]:
    """Apply pgqueue's pending migrations on ``op.get_bind()``; return the versions applied.

    ``op`` is ``alembic.op`` (or an ``Operations``). The engine must use psycopg 3
    (a ``postgresql+psycopg://`` URL). In Alembic's usual transaction the
    migrations join it; on a connection in autocommit mode each commits on its
    own. Offline mode (``alembic upgrade --sql``) cannot run a migrator: it raises
    MigrationError, and ``pgqueue migrate --print-sql`` prints the SQL instead.
    """
    if op.get_context().as_sql:
        raise MigrationError(
            "pgqueue's migrations need a database connection, and Alembic runs offline "
            "(--sql): include the output of 'pgqueue migrate --print-sql' instead")
    driver = op.get_bind().connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError(f"the Alembic connection's driver is {type(driver).__module__}."
                        f"{type(driver).__qualname__}: pgqueue runs on psycopg 3, use a "
                        "'postgresql+psycopg://' URL")
    return migrate(driver, in_transaction=not driver.autocommit)
