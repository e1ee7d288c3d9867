"""The sans-IO step runner shared by every call on the caller's connection.

A call's database work is written once, as a generator of steps: it yields
``(sql, params)`` (or :class:`CopyRows`) and receives the fetched rows.
:func:`run_steps` drives it on a sync ``Connection`` or ``Cursor``,
:func:`run_steps_async` on their async twins; the producer, chains, batches,
controls and results all use them.

Invariants:
- The runners execute the steps on the caller's connection and nothing else:
  they never commit, roll back or set session state.
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
    return None


def run_steps(conn: psycopg.Connection[Any] | psycopg.Cursor[Any], steps: Steps) -> Any:
    """Drive steps on a sync connection or cursor; return the generator's value."""
    cur = conn if isinstance(conn, psycopg.Cursor) else conn.cursor()
    try:
        step = next(steps)
        while True:
            try:
                if isinstance(step, CopyRows):
                    _copy(cur.connection, step)
                    step = steps.send([])
                    continue
                cur.execute(*step)
            except psycopg.Error as exc:
                translated = translate_error(exc)
                if translated is None:
                    raise
                raise translated from exc
            step = steps.send(cur.fetchall())
    except StopIteration as stop:
        return stop.value


def _copy(conn: psycopg.Connection[Any], step: CopyRows) -> None:
    # A cursor of our own: its adapters (the jsonb text dumper) stay private.
    with conn.cursor() as cur:
        copy_cursor_setup(cur)
        with cur.copy(step.sql) as copy:
            copy.set_types(list(step.types))
            for row in step.rows:
                copy.write_row(row)


async def run_steps_async(
    conn: psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any], steps: Steps
) -> Any:
    """Drive steps on an async connection or cursor; return the generator's value."""
    cur = conn if isinstance(conn, psycopg.AsyncCursor) else conn.cursor()
    try:
        step = next(steps)
        while True:
            try:
                if isinstance(step, CopyRows):
                    await _copy_async(cur.connection, step)
                    step = steps.send([])
                    continue
                await cur.execute(*step)
            except psycopg.Error as exc:
                translated = translate_error(exc)
                if translated is None:
                    raise
                raise translated from exc
            step = steps.send(await cur.fetchall())
    except StopIteration as stop:
        return stop.value


async def _copy_async(conn: psycopg.AsyncConnection[Any], step: CopyRows) -> None:
    # A cursor of our own: its adapters (the jsonb text dumper) stay private.
    async with conn.cursor() as cur:
        copy_cursor_setup(cur)
        async with cur.copy(step.sql) as copy:
            copy.set_types(list(step.types))
            for row in step.rows:
                await copy.write_row(row)


def check_sync(conn: object, async_twin: str = "pgqueue.enqueue_async") -> None:
    """TypeError unless ``conn`` is a sync Connection or Cursor (the message names
    ``async_twin``, as :func:`check_async` names its twin)."""
    if not isinstance(conn, psycopg.Connection | psycopg.Cursor):
        raise TypeError(
            f"conn must be a psycopg Connection or Cursor, got {type(conn).__name__}; "
            f"use {async_twin} for an AsyncConnection"
        )


def check_async(conn: object, sync_twin: str = "pgqueue.enqueue") -> None:
    """TypeError unless ``conn`` is an AsyncConnection or AsyncCursor."""
    if not isinstance(conn, psycopg.AsyncConnection | psycopg.AsyncCursor):
        raise TypeError(
            "conn must be a psycopg AsyncConnection or AsyncCursor, got "
            f"{type(conn).__name__}; use {sync_twin} for a sync Connection"
        )
