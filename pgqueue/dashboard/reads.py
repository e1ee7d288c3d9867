"""Which server a dashboard request reads on, and the read replica's lag shown with it.

Invariants:
- :class:`Sources` is the one place that chooses: pages, partials and API GETs
  read on :meth:`Sources.read` (the read replica's pool when ``read_dsn`` is
  given, else the primary's); every POST (actions, bulk actions, enqueue,
  retention) runs on :meth:`Sources.write`, the primary's pool, and so keeps
  working while the replica is down.
- A replica that cannot be reached raises
  :class:`~pgqueue.errors.ReplicaUnavailableError` naming it (503 for the
  request); the dashboard never reads from the primary instead.
- With a read DSN every read answers with the replica's lag: a banner above each
  page, the ``Pgqueue-Read-From`` header on every API GET, the ``read_from``
  field of ``/api/queues`` and ``/api/jobs``, and ``/api/replica`` itself.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ..replica import ReplicaLag, primary_wal_position, replica_lag, replica_unavailable
from .http import Response
from .pages import esc

__all__ = ["LAG_HEADER", "PRIMARY_POSITION_TIMEOUT_SECONDS", "Sources", "banner",
           "get_replica", "lag_header", "openapi_paths", "with_read_from"]

Conn = psycopg.Connection[Any]

LAG_HEADER = "Pgqueue-Read-From"
#: How long a read waits for a primary connection to read its WAL position; past it
#: the lag falls back to the age of the replica's last replayed commit.
PRIMARY_POSITION_TIMEOUT_SECONDS = 2.0


class Sources:
    """The primary's pool and, optionally, the read replica's."""

    def __init__(self, pool: ConnectionPool[Any], read_pool: ConnectionPool[Any] | None = None,
                 read_dsn: str | None = None) -> None:
        if (read_pool is None) != (read_dsn is None):
            raise ValueError("give read_pool and read_dsn together, or neither")
        self.pool = pool
        self.read_pool = read_pool
        self.read_dsn = read_dsn

    @property
    def replicated(self) -> bool:
        return self.read_pool is not None

    def write(self) -> contextlib.AbstractContextManager[Conn]:
        """A connection of the primary, for anything that changes something."""
        return self.pool.connection()

    @contextlib.contextmanager
    def read(self) -> Iterator[Conn]:
        """A connection for reads: the replica's when there is one."""
        if self.read_pool is None or self.read_dsn is None:
            with self.pool.connection() as conn:
                yield conn
            return
        try:
            with self.read_pool.connection() as conn:
                try:
                    yield conn
                except psycopg.OperationalError as exc:
                    if conn.broken or conn.closed:  # the server went, not the statement
                        raise replica_unavailable(self.read_dsn, exc) from None
                    raise
        except PoolTimeout:
            raise replica_unavailable(self.read_dsn, self._why_no_connection()) from None

    def lag(self, conn: Conn) -> ReplicaLag | None:
        """The lag of ``conn`` (from :meth:`read`) against the primary; None without a
        replica. When the primary does not answer, the age of the last replayed commit."""
        if not self.replicated:
            return None
        try:
            with self.pool.connection(timeout=PRIMARY_POSITION_TIMEOUT_SECONDS) as primary:
                position: str | None = primary_wal_position(primary)
        except (PoolTimeout, psycopg.OperationalError):
            position = None
        return replica_lag(conn, position)

    def _why_no_connection(self) -> str:
        """Why the replica's pool gave no connection: a fresh attempt's error, else busy."""
        assert self.read_pool is not None and self.read_dsn is not None
        try:
            psycopg.connect(self.read_dsn, connect_timeout=3).close()
        except psycopg.Error as exc:
            return str(exc)
        return (f"all {self.read_pool.max_size} of the dashboard's connections to it stayed "
                f"busy for {self.read_pool.timeout:g} s")

    def close(self) -> None:
        self.pool.close()
        if self.read_pool is not None:
            self.read_pool.close()


def lag_header(lag: ReplicaLag) -> str:
    """The ``Pgqueue-Read-From`` header: ``replica; lag_seconds=0.0; lag_bytes=0``."""
    parts = [lag.read_from]
    for name in ("lag_seconds", "lag_bytes"):
        value = getattr(lag, name)
        parts.append(f"{name}={'unknown' if value is None else value}")
    if lag.replay_paused:
        parts.append("replay_paused")
    return "; ".join(parts)


def with_read_from(response: Response, lag: ReplicaLag | None, *, field: bool) -> Response:
    """``response`` with the ``Pgqueue-Read-From`` header, and with ``field`` its JSON
    object's ``read_from`` too (``/api/queues``, ``/api/jobs``); as it was without a lag."""
    if lag is None:
        return response
    if field and response.status == 200:
        body = json.loads(response.body)
        if isinstance(body, dict):
            headers = response.headers
            response = Response.json({**body, "read_from": lag.as_json()})
            response.headers.update(headers)
    response.headers[LAG_HEADER] = lag_header(lag)
    return response


def banner(lag: ReplicaLag | None) -> str:
    """The line above a page read from the replica (nothing without one)."""
    if lag is None:
        return ""
    css = "replica ok" if lag.caught_up or lag.read_from == "primary" else "replica behind"
    return f"<p class=\"{css}\" id=\"read-from\">{esc(lag.describe())}</p>"


def get_replica(sources: Sources) -> Response:
    """``GET /api/replica``: where reads come from and how far behind the primary."""
    if not sources.replicated:
        return Response.json({"read_from": "primary", "read_dsn": False,
                              "summary": "reading from the primary (no read DSN)"})
    with sources.read() as conn:
        lag = sources.lag(conn)
    assert lag is not None
    return Response.json({**lag.as_json(), "read_dsn": True})


def openapi_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """``/api/replica`` in the OpenAPI document (``errors``: its error responses)."""
    number = {"type": "number", "nullable": True}
    schema = {"type": "object", "required": ["read_from", "read_dsn", "summary"], "properties": {
        "read_from": {"type": "string", "enum": ["replica", "primary"]},
        "read_dsn": {"type": "boolean"}, "summary": {"type": "string"},
        "lag_seconds": number, "lag_bytes": {"type": "integer", "nullable": True},
        "caught_up": {"type": "boolean"}, "replay_paused": {"type": "boolean"},
        "replay_age_seconds": number,
        "last_replay_at": {"type": "string", "format": "date-time", "nullable": True},
        "measured_by": {"type": "string", "enum": ["wal", "replay_timestamp", "primary"]}}}
    return {"/api/replica": {"get": {
        "summary": "Where reads come from (the read replica or the primary) and the replica's "
                   "lag: 0 s when its replay position has reached the primary's WAL position",
        "operationId": "getReplica",
        "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": schema}}}, **errors}}}}
