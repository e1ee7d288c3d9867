"""pgqueue's schema as Django migrations: each one runs pgqueue's own migrator.

Invariant: the SQL is pgqueue's, applied by :func:`pgqueue.migrate` on the
connection Django migrates, never a copy; so ``manage.py migrate`` and
``pgqueue migrate`` record the same versions and each is a no-op after the
other. Every Django migration of this app says in ``PGQUEUE_SCHEMA_VERSION``
the newest pgqueue migration it brings; a release that adds a pgqueue migration
adds a Django migration calling :func:`apply_schema` (a test checks it).

Unapplying is a no-op: pgqueue's migrations only go forward, and dropping the
schema would drop every queued job. ``manage.py migrate pgqueue zero`` leaves
the schema and its jobs in place; remove them by hand with
``DROP SCHEMA pgqueue CASCADE`` when that is really meant.
"""

from __future__ import annotations

from typing import Any

from ...migrate import migrate
from ...producer.connections import sync_connection

__all__ = ["apply_schema", "leave_schema"]


def apply_schema(apps: Any, schema_editor: Any) -> None:
    """``RunPython`` forwards: apply pgqueue's pending migrations on Django's connection.

    The Django migration must be ``atomic = False``: each pgqueue migration
    commits on its own, under pgqueue's migration lock.
    """
    migrate(sync_connection(schema_editor.connection))


def leave_schema(apps: Any, schema_editor: Any) -> None:
    """``RunPython`` backwards: keep the schema and its jobs (see the module's docstring)."""
