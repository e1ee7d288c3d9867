"""Reading from a streaming replica: connecting to it, and how far behind it is.

Invariants:
- Nothing here writes, and nothing falls back: a read replica that cannot be
  reached raises :class:`~pgqueue.errors.ReplicaUnavailableError` naming it,
  never a quiet read from the primary.
- The lag compares WAL positions when the primary can be asked: its
  ``pg_current_wal_lsn()`` is read first, then the replica's replay position, so
  ``lag_bytes == 0`` means the replica holds every commit made before the
  reading. Only when the primary is not asked does the lag fall back to the age
  of the last replayed commit (``now() - pg_last_xact_replay_timestamp()``),
  which also grows while an idle primary commits nothing.
- A read DSN may name the primary itself (for testing): the lag then says
  ``read_from = "primary"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from . import _dsn
from ._sql import query
from .errors import ReplicaUnavailableError

__all__ = ["ReplicaLag", "connect_replica", "primary_wal_position", "replica_lag",
           "replica_unavailable"]

Conn = psycopg.Connection[Any]

READ_FROM = ("replica", "primary")
MEASURED_BY = ("wal", "replay_timestamp", "primary")
"""How :attr:`ReplicaLag.lag_seconds` was found: WAL positions compared with the
primary's, the age of the last replayed commit alone, or not at all (the read
DSN is a primary: no lag)."""


@dataclass(frozen=True)
class ReplicaLag:
    """How far the server behind a read DSN is behind the primary, at one moment."""

    read_from: str
    """``replica``, or ``primary`` when the read DSN names a server not in recovery."""
    lag_seconds: float | None
    """0 when caught up; else the age of the last replayed commit (an upper bound of
    how old the replica's view is); None when nothing was replayed since it started."""
    lag_bytes: int | None
    """WAL written on the primary and not replayed here; None when not compared."""
    replay_paused: bool
    replay_age_seconds: float | None
    """``now() - pg_last_xact_replay_timestamp()`` on the replica, as it is."""
    last_replay_at: datetime | None
    measured_by: str

    @property
    def caught_up(self) -> bool:
        return self.lag_bytes == 0

    def as_json(self) -> dict[str, Any]:
        return {"read_from": self.read_from, "lag_seconds": self.lag_seconds,
                "lag_bytes": self.lag_bytes, "caught_up": self.caught_up,
                "replay_paused": self.replay_paused,
                "replay_age_seconds": self.replay_age_seconds,
                "last_replay_at": self.last_replay_at, "measured_by": self.measured_by,
                "summary": self.describe()}

    def describe(self) -> str:
        """One line for people: where reads come from and how far behind they are."""
        if self.read_from == "primary":
            return "reading from the primary (the read DSN is not a replica)"
        paused = "; replay is paused" if self.replay_paused else ""
        if self.caught_up:
            return f"reading from a replica: caught up with the primary{paused}"
        if self.lag_seconds is None:
            behind = "no commit replayed since it started"
        elif self.lag_bytes is not None:
            behind = f"up to {_seconds(self.lag_seconds)} behind the primary"
        else:
            behind = f"last replayed commit {_seconds(self.lag_seconds)} ago"
        if self.lag_bytes is not None:
            missing = f"{_size(self.lag_bytes)} of WAL not replayed yet"
        else:
            missing = ("not compared with the primary: on an idle primary this age grows "
                       "though nothing is missing")
        return f"reading from a replica: {behind} ({missing}){paused}"


def primary_wal_position(conn: Conn) -> str:
    """The primary's ``pg_current_wal_lsn()``, to pass to :func:`replica_lag`."""
    row = conn.execute(query("wal_position_get"), prepare=False).fetchone()
    assert row is not None
    return str(row[0])


def replica_lag(conn: Conn, primary_lsn: str | None = None) -> ReplicaLag:
    """The lag of the server ``conn`` reads from, against ``primary_lsn`` when given.

    Read ``primary_lsn`` with :func:`primary_wal_position` just before this call.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query("replica_lag_get"), {"primary_lsn": primary_lsn},
                          prepare=False).fetchone()
    assert row is not None
    if not row["in_recovery"]:
        return ReplicaLag("primary", 0.0, 0, False, None, None, "primary")
    lag_bytes = None if row["lag_bytes"] is None else int(row["lag_bytes"])
    age = row["replay_age_seconds"]
    lag_seconds = 0.0 if lag_bytes == 0 else (None if age is None else max(float(age), 0.0))
    return ReplicaLag("replica", lag_seconds, lag_bytes, bool(row["replay_paused"]),
                      None if age is None else float(age), row["last_replay_at"],
                      "wal" if lag_bytes is not None else "replay_timestamp")


def replica_unavailable(read_dsn: str, reason: BaseException | str) -> ReplicaUnavailableError:
    """The error for a read replica that failed: which one, why, and what still works."""
    why = " ".join(_dsn.redact(str(reason)).split()) or type(reason).__name__
    stop = "" if why.endswith((".", "?", "!")) else "."
    return ReplicaUnavailableError(
        f"the read replica {_dsn.redact(read_dsn)!r} (--read-dsn, PGQUEUE_READ_DSN) is "
        f"unavailable: {why}{stop} Reads need it; writes go to the primary (--dsn) and are "
        "not affected. Bring the replica back, or drop --read-dsn to read from the primary")


def connect_replica(read_dsn: str, **kwargs: Any) -> Conn:
    """A connection to the read replica; ReplicaUnavailableError when it cannot be made."""
    try:
        return psycopg.connect(read_dsn, **kwargs)
    except psycopg.Error as exc:
        raise replica_unavailable(read_dsn, exc) from None


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} kB"
    return f"{count / (1024 * 1024):.1f} MB"
