"""The sans-IO step runner shared by every call on the caller's connection.

A call's database work is written once, as a generator of steps: it yields
``(sql, params)`` (or :class:`CopyRows`) and receives the fetched rows.
:func:`run_steps` drives it on whatever sync object the caller holds (a psycopg
``Connection`` or ``Cursor``, a SQLAlchemy session, a Django connection: see
:mod:`.connections`), :func:`run_steps_async` on the async twins; the producer,
chains, batches, controls and results all use them.

Invariants:
- The runners execute the steps on the caller's connection and nothing else:
  they never commit, roll back or set session state, and prepare nothing on
  the server (``prepare=False``), so a pooler in transaction mode is safe.
- They read with pgqueue's own cursor and psycopg's default adapters, so what
  the connection has registered (Django's jsonb loader) changes nothing.
- A database error that means "the schema is missing" or "the database refused
  the job's values" is translated at this one boundary (:func:`translate_error`);
  every other error propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper
from psycopg.pq import Format

from ..errors import InvalidJobError, PgQueueError, SchemaNotReadyError
from .connections import (
    AsyncHandle,
    SyncHandle,
    async_connection,
    check_async,
    check_sync,
    own_async_cursor,
    own_cursor,
    sync_connection,
)

__all__ = [
    "CopyRows",
    "Rows",
    "Step",
    "Steps",
    "check_async",
    "check_sync",
    "copy_cursor_setup",
    "run_steps",
    "run_steps_async",
    "translate_error",
]

Rows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class CopyRows:
    """A step that streams ``rows`` into a binary ``COPY … FROM STDIN`` (``sql``)."""

    sql: str
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]


Step = tuple[str, Mapping[str, Any]] | CopyRows
Steps = Generator[Step, Rows, Any]

_JSONB_OID = 3802


class _JsonText(str):
    """Marks JSON text for the dumper below (registration key only)."""


class _JsonTextDumper(Dumper):
    format = Format.BINARY
    oid = _JSONB_OID

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + str(obj).encode()


def copy_cursor_setup(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> None:
    """Let a (fresh, pgqueue-owned) cursor COPY JSON text into a jsonb column."""
    cur.adapters.register_dumper(_JsonText, _JsonTextDumper)


def translate_error(exc: psycopg.Error) -> PgQueueError | None:
    """The pgqueue error for a database error, or None to re-raise it as is."""
    if isinstance(exc, pg_errors.UndefinedTable | pg_errors.UndefinedFunction
                  | pg_errors.InvalidSchemaName):
        return SchemaNotReadyError(
            f"the pgqueue schema is missing or out of date ({exc.diag.message_primary}); "
            "run 'pgqueue migrate'"
        )
    if isinstance(exc, pg_errors.CheckViolation | pg_errors.InvalidParameterValue
                  | pg_errors.InvalidTextRepresentation | pg_errors.UntranslatableCharacter):
        return InvalidJobError(f"the database rejected the job: {exc.diag.message_primary}")
    if isinstance(exc, pg_errors.FeatureNotSupported) and (
            exc.diag.message_primary or "").startswith("pgqueue.enqueue:"):
        # A throttled enqueue outside READ COMMITTED (migration 0015).
        return InvalidJobError(f"the database refused the enqueue: {exc.diag.message_primary}")
    return None


def run_steps(conn: SyncHandle, steps: Steps) -> Any:
    """Drive steps on an accepted sync object (:mod:`.connections`); return the value."""
    with own_cursor(sync_connection(conn)) as cur:
        try:
            step = next(steps)
            while True:
                try:
                    if isinstance(step, CopyRows):
                        _copy(cur, step)
                        step = steps.send([])
                        continue
                    cur.execute(*step, prepare=False)
                except psycopg.Error as exc:
                    translated = translate_error(exc)
                    if translated is None:
                        raise
                    raise translated from exc
                step = steps.send(cur.fetchall())
        except StopIteration as stop:
            return stop.value


def _copy(cur: psycopg.Cursor[Any], step: CopyRows) -> None:
    copy_cursor_setup(cur)
    with cur.copy(step.sql) as copy:
        copy.set_types(list(step.types))
        for row in step.rows:
            copy.write_row(row)


async def run_steps_async(conn: AsyncHandle, steps: Steps) -> Any:
    """Drive steps on an accepted async object; return the generator's value."""
    async with own_async_cursor(await async_connection(conn)) as cur:
        try:
            step = next(steps)
            while True:
                try:
                    if isinstance(step, CopyRows):
                        await _copy_async(cur, step)
                        step = steps.send([])
                        continue
                    await cur.execute(*step, prepare=False)
                except psycopg.Error as exc:
                    translated = translate_error(exc)
                    if translated is None:
                        raise
                    raise translated from exc
                step = steps.send(await cur.fetchall())
        except StopIteration as stop:
            return stop.value


async def _copy_async(cur: psycopg.AsyncCursor[Any], step: CopyRows) -> None:
    copy_cursor_setup(cur)
    async with cur.copy(step.sql) as copy:
        copy.set_types(list(step.types))
        for row in step.rows:
            await copy.write_row(row)
