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

from ..errors import MigrationError
from ..migrate import migrate
from ..producer.connections import sync_connection

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
    driver = sync_connection(op.get_bind(), begin=False)  # Alembic began its transaction
    return migrate(driver, in_transaction=not driver.autocommit)
