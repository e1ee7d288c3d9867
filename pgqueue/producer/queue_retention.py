"""Per-queue retention: how long a queue keeps its finished jobs, by final state.

An override replaces the workers' ``--retention`` for one queue and state; a
state without one follows the workers. Like the other queue settings, each
call runs on the caller's connection and never commits: it takes effect at the
caller's commit, from the leader's next round. A bad argument raises
:class:`~pgqueue.errors.InvalidArgumentError` before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from .._sql import query
from ..errors import InvalidArgumentError
from ..retention import FINAL_STATES, parse_keep
from .connections import AsyncHandle, SyncHandle
from .control import _queue_name
from .steps import Steps, run_steps, run_steps_async

__all__ = ["DEFAULT", "OFF", "KeepValue", "get_retention", "get_retention_async",
           "set_retention", "set_retention_async"]

KeepValue = timedelta | float | int | str
OFF = "off"
DEFAULT = "default"


def set_retention(conn: SyncHandle, queue: str, *, succeeded: KeepValue | None = None,
                  cancelled: KeepValue | None = None, failed: KeepValue | None = None) -> None:
    """Set how long ``queue`` keeps its finished jobs of each state given.

    Each value is a timedelta, seconds or a duration with its unit (``"12h"``,
    ``"90d"``), from 1 minute to 100 years; ``"off"`` keeps them for ever;
    ``"default"`` removes the override (the workers' ``--retention`` applies).
    States left out (None) are unchanged. Example::

        pgqueue.set_retention(conn, "audit", succeeded="90d", failed="off")
    """
    run_steps(conn, _set(_changes(queue, succeeded=succeeded, cancelled=cancelled,
                                  failed=failed)))


async def set_retention_async(conn: AsyncHandle, queue: str, *,
                              succeeded: KeepValue | None = None,
                              cancelled: KeepValue | None = None,
                              failed: KeepValue | None = None) -> None:
    """:func:`set_retention` for an AsyncConnection."""
    await run_steps_async(conn, _set(_changes(queue, succeeded=succeeded,
                                              cancelled=cancelled, failed=failed)))


def get_retention(conn: SyncHandle, queue: str) -> dict[str, timedelta | None]:
    """The overrides of ``queue``: ``{state: timedelta, or None for 'off'}``; a
    state that is not in the dict follows the workers' retention."""
    overrides: dict[str, timedelta | None] = run_steps(conn, _get(_queue_name(queue)))
    return overrides


async def get_retention_async(conn: AsyncHandle, queue: str) -> dict[str, timedelta | None]:
    """:func:`get_retention` for an AsyncConnection."""
    overrides: dict[str, timedelta | None] = await run_steps_async(
        conn, _get(_queue_name(queue)))
    return overrides


def _changes(queue: str, **given: KeepValue | None) -> tuple[str, dict[str, float | str | None]]:
    name = _queue_name(queue)
    changes: dict[str, float | str | None] = {}
    for state, value in given.items():
        if value is None:
            continue
        if isinstance(value, str) and value.strip().lower() == DEFAULT:
            changes[state] = DEFAULT
        else:
            changes[state] = parse_keep(value, field=f"retention of {state}",
                                        error=InvalidArgumentError)
    if not changes:
        raise InvalidArgumentError(
            "set_retention: give at least one of succeeded, cancelled, failed (a duration "
            "such as '7d', 'off' or 'default')")
    return name, changes


def _set(change: tuple[str, Mapping[str, float | str | None]]) -> Steps:
    queue, changes = change
    for state in FINAL_STATES:
        if state not in changes:
            continue
        keep = changes[state]
        if keep == DEFAULT:
            yield query("queue_reset_retention"), {"queue": queue, "state": state}
        else:
            yield query("queue_set_retention"), {"queue": queue, "state": state,
                                                 "keep_seconds": keep}
    return None


def _get(queue: str) -> Steps:
    rows: list[tuple[Any, ...]] = yield query("queue_retention_get"), {"queue": queue}
    return {str(state): None if keep is None else timedelta(seconds=float(keep))
            for state, keep in rows}
