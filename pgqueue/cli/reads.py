"""Where the read-only commands read: the read replica when one is given, else the primary.

Invariant: this is the one place a command decides which server a read goes to.
Inspection commands (status, jobs list, jobs show, workers, periodic list, batch
status, batch list, batch export) take ``--read-dsn`` and connect with
:func:`connect_reads`; every command that changes something connects to
``--dsn`` only. A read replica that cannot be reached is an error naming it
(:class:`~pgqueue.errors.ReplicaUnavailableError`), never a read from the primary.
"""

from __future__ import annotations

from typing import Any

import click
import psycopg

from .. import _dsn
from ..replica import ReplicaLag, connect_replica, primary_wal_position, replica_lag
from .common import require_dsn

__all__ = ["READ_DSN_HELP", "connect_reads", "read_dsn_option", "reads_lag"]

READ_DSN_HELP = ("A read replica for the reads (a streaming replica of --dsn); else "
                 "$PGQUEUE_READ_DSN; else reads go to --dsn. Writes always go to --dsn.")

read_dsn_option = click.option("--read-dsn", envvar="PGQUEUE_READ_DSN", help=READ_DSN_HELP)


def connect_reads(dsn: str | None, read_dsn: str | None, **kwargs: Any) -> Any:
    """An autocommit connection for reads: to ``read_dsn`` when given, else to ``dsn``."""
    options = {"autocommit": True, **kwargs}
    if read_dsn:
        return connect_replica(read_dsn, **options)
    return _dsn.connect(require_dsn(dsn), **options)


def reads_lag(conn: psycopg.Connection[Any], dsn: str | None,
              read_dsn: str | None) -> ReplicaLag | None:
    """How far ``conn`` (from :func:`connect_reads`) is behind the primary; None
    without a read DSN. The WAL positions are compared when the primary answers,
    else the lag is the age of the replica's last replayed commit."""
    if not read_dsn:
        return None
    primary_lsn = None
    primary = _dsn.resolve_dsn(dsn)
    if primary:
        try:
            with psycopg.connect(primary, autocommit=True, connect_timeout=5) as writer:
                primary_lsn = primary_wal_position(writer)
        except psycopg.OperationalError:
            primary_lsn = None
    return replica_lag(conn, primary_lsn)
