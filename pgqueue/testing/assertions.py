"""Assertions on the jobs a test enqueued, read on the test's own connection.

They read the live jobs (``queued`` or ``running``, pgqueue.jobs) with
job_live_list on the given connection, so they see the jobs of the caller's
uncommitted transaction. A job that finished (ran in a drain, say) is no longer
enqueued. Args are read with pgqueue's own JSON loader, whatever loaders the
connection has registered.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import TupleRow

from .._sql import query
from ..producer.connections import (
    AsyncHandle,
    SyncHandle,
    async_connection,
    check_async,
    check_sync,
    own_async_cursor,
    own_cursor,
    sync_connection,
)
from ..tasks import Registry

__all__ = ["EnqueuedJob", "assert_enqueued", "assert_enqueued_async", "enqueued_jobs",
           "enqueued_jobs_async", "refute_enqueued", "refute_enqueued_async"]

_SHOWN_MAX = 20


@dataclass(frozen=True, slots=True)
class EnqueuedJob:
    """A live job as a test sees it. ``due``: a claim could take it now.
    ``known``: a task of the drain's registry has its name (True outside a drain)."""

    id: int
    task: str
    queue: str
    args: Any
    state: str
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    unique_key: str | None
    concurrency_key: str | None
    last_error: str | None
    due: bool
    known: bool = True

    def describe(self) -> str:
        args = json.dumps(self.args, sort_keys=True, ensure_ascii=False, default=repr)
        return (f"#{self.id} {self.task} queue={self.queue!r} args={args} state={self.state}"
                f"{'' if self.due or self.state != 'queued' else ' (not due)'}")


FILTERS = tuple(f.name for f in dataclasses.fields(EnqueuedJob))


def job_params(*, queue: str | None, task: str | None, queues: Sequence[str] | None = None,
               due_only: bool = False) -> dict[str, Any]:
    """The parameters of job_live_list."""
    return {"queue": queue, "task": task, "due_only": due_only,
            "queues": None if queues is None else list(queues)}


def read_jobs(rows: list[TupleRow], registry: Registry | None = None) -> list[EnqueuedJob]:
    """Rows of job_live_list as jobs (``known`` against ``registry`` when given)."""
    return [EnqueuedJob(*[*row, registry is None or row[1] in registry]) for row in rows]


def _read(conn: SyncHandle, params: dict[str, Any]) -> list[EnqueuedJob]:
    check_sync(conn)
    with own_cursor(sync_connection(conn)) as cur:
        return read_jobs(cur.execute(query("job_live_list"), params, prepare=False).fetchall())


async def _read_async(conn: AsyncHandle, params: dict[str, Any]) -> list[EnqueuedJob]:
    check_async(conn)
    async with own_async_cursor(await async_connection(conn)) as cur:
        await cur.execute(query("job_live_list"), params, prepare=False)
        return read_jobs(await cur.fetchall())


def _wanted(filters: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise TypeError(f"unknown filter {', '.join(unknown)}; filters are {', '.join(FILTERS)}")
    return filters


def _matching(jobs: list[EnqueuedJob], wanted: dict[str, Any]) -> list[EnqueuedJob]:
    return [j for j in jobs if all(getattr(j, k) == v for k, v in wanted.items())]


def _listing(jobs: list[EnqueuedJob]) -> str:
    if not jobs:
        return "  (no job)"
    lines = [f"  {j.describe()}" for j in jobs[:_SHOWN_MAX]]
    if len(jobs) > _SHOWN_MAX:
        lines.append(f"  ... and {len(jobs) - _SHOWN_MAX} more")
    return "\n".join(lines)


def _describe(wanted: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in wanted.items()) or "any job"


def _assert(jobs: list[EnqueuedJob], wanted: dict[str, Any], count: int | None
            ) -> list[EnqueuedJob]:
    found = _matching(jobs, wanted)
    if (count is None and found) or len(found) == count:
        return found
    expected = "a job" if count is None else f"{count} job{'s' if count != 1 else ''}"
    raise AssertionError(
        f"expected {expected} enqueued with {_describe(wanted)}, found {len(found)}; "
        f"enqueued ({len(jobs)}):\n{_listing(jobs)}")


def _refute(jobs: list[EnqueuedJob], wanted: dict[str, Any]) -> None:
    found = _matching(jobs, wanted)
    if found:
        raise AssertionError(
            f"expected no job enqueued with {_describe(wanted)}, found {len(found)}:\n"
            f"{_listing(found)}")


def _filters(task: str | None, args: Any, queue: str | None,
             filters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(SQL parameters, every filter to match) of one call."""
    wanted = {k: v for k, v in {"task": task, "args": args, "queue": queue}.items()
              if v is not None}
    wanted.update(_wanted(filters))
    return job_params(queue=queue, task=task), wanted


def enqueued_jobs(conn: SyncHandle, *, task: str | None = None,
                  args: Any = None, queue: str | None = None,
                  **filters: Any) -> list[EnqueuedJob]:
    """The live jobs on ``conn`` (id order) that match every filter given.

    Filters are :class:`EnqueuedJob` fields compared with ``==`` (``args`` is the
    whole args dict). Example: ``enqueued_jobs(conn, task="send_email", priority=5)``.
    """
    params, wanted = _filters(task, args, queue, filters)
    return _matching(_read(conn, params), wanted)


def assert_enqueued(conn: SyncHandle, *, task: str | None = None,
                    args: Any = None, queue: str | None = None, count: int | None = None,
                    **filters: Any) -> list[EnqueuedJob]:
    """Assert that a live job matches (exactly ``count`` of them when given); return
    the matches. The failure message lists every live job instead.

    Example: ``assert_enqueued(conn, task="send_email", args={"to": "a@example.com"})``.
    """
    _, wanted = _filters(task, args, queue, filters)
    return _assert(_read(conn, job_params(queue=None, task=None)), wanted, count)


def refute_enqueued(conn: SyncHandle, *, task: str | None = None,
                    args: Any = None, queue: str | None = None, **filters: Any) -> None:
    """Assert that no live job matches; the failure message lists those that do."""
    params, wanted = _filters(task, args, queue, filters)
    _refute(_read(conn, params), wanted)


async def enqueued_jobs_async(conn: AsyncHandle, *, task: str | None = None,
                              args: Any = None, queue: str | None = None,
                              **filters: Any) -> list[EnqueuedJob]:
    """:func:`enqueued_jobs` for an AsyncConnection."""
    params, wanted = _filters(task, args, queue, filters)
    return _matching(await _read_async(conn, params), wanted)


async def assert_enqueued_async(conn: AsyncHandle, *, task: str | None = None,
                                args: Any = None, queue: str | None = None,
                                count: int | None = None, **filters: Any) -> list[EnqueuedJob]:
    """:func:`assert_enqueued` for an AsyncConnection."""
    _, wanted = _filters(task, args, queue, filters)
    return _assert(await _read_async(conn, job_params(queue=None, task=None)), wanted, count)


async def refute_enqueued_async(conn: AsyncHandle, *, task: str | None = None,
                                args: Any = None, queue: str | None = None,
                                **filters: Any) -> None:
    """:func:`refute_enqueued` for an AsyncConnection."""
    params, wanted = _filters(task, args, queue, filters)
    _refute(await _read_async(conn, params), wanted)
