"""Batches: many jobs followed as one, with counts, times and an optional callback.

Invariants:
- Like enqueue, everything runs on the caller's connection and never commits:
  the batch, its jobs and its seal exist if and only if the caller's
  transaction commits.
- A batch is *finished* once it is sealed (no more jobs will join) and none of
  its jobs is live. Its callback task, if any, is then enqueued exactly once,
  with ``callback_args`` plus ``batch_id``, by whoever settles it: the seal
  itself, the worker that finishes its last job, or the leader's sweep
  (SQL: ``pgqueue.settle_batches``). A finished batch stays finished: a job of
  it retried by hand later does not reopen it or fire the callback again.
- Counts are read from the jobs themselves (view ``pgqueue.batches``); finishing
  a job never writes to a shared batch row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._sql import query
from ..admin import validate_limit
from ..errors import InvalidArgumentError, InvalidJobError
from ..tasks import Task
from . import params as _params
from .connections import AsyncHandle, SyncHandle
from .enqueue import BatchBase, JobSpec, enqueue, enqueue_many
from .enqueue_async import enqueue_async, enqueue_many_async
from .steps import Steps, run_steps, run_steps_async

__all__ = [
    "AsyncBatch",
    "Batch",
    "BatchBase",
    "BatchInfo",
    "batch",
    "batch_async",
    "get_batch",
    "get_batch_async",
    "list_batches",
]


NAME_MAX = 200
_MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """One row of the ``pgqueue.batches`` view.

    ``total`` = ``succeeded + failed + cancelled + pending``; ``pending`` counts
    live jobs (queued or running), ``running`` those running now. ``started_at``
    is the first start of any of its jobs; ``finished_at`` is set once the batch
    is sealed and has no live job; ``callback_job_id`` is the callback's job.
    """

    id: int
    name: str | None
    total: int
    succeeded: int
    failed: int
    cancelled: int
    pending: int
    running: int
    created_at: datetime
    started_at: datetime | None
    sealed_at: datetime | None
    finished_at: datetime | None
    callback_task: str | None
    callback_job_id: int | None

    @property
    def done(self) -> int:
        """Jobs that finished, whatever the outcome."""
        return self.succeeded + self.failed + self.cancelled

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


class Batch(BatchBase):
    """An open batch on a sync connection; yielded by :func:`batch`.

    ``enqueue`` and ``enqueue_many`` take the arguments of :func:`pgqueue.enqueue`
    and :func:`pgqueue.enqueue_many` (without ``conn``) and add the jobs to the
    batch, on the batch's connection. ``task`` may be a :class:`pgqueue.Task`, whose
    queue, priority and max_attempts are then the defaults.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: SyncHandle, batch_id: int) -> None:
        super().__init__(batch_id)
        self._conn = conn

    def enqueue(self, task: str | Task, args: Mapping[str, Any] | None = None,
                **options: Any) -> int:
        name, options = _task_options(task, options)
        return enqueue(self._conn, name, args, batch=self, **options)

    def enqueue_many(self, jobs: Iterable[JobSpec]) -> list[int]:
        return enqueue_many(self._conn, jobs, batch=self)

    def seal(self) -> bool:
        """Let no more jobs join; False if it was sealed already. The context does this."""
        if self._sealed:
            return False
        self._sealed = True
        return bool(run_steps(self._conn, _value("batch_seal", {"batch_id": self.id})))


class AsyncBatch(BatchBase):
    """:class:`Batch` on an AsyncConnection; yielded by :func:`batch_async`."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncHandle, batch_id: int) -> None:
        super().__init__(batch_id)
        self._conn = conn

    async def enqueue(self, task: str | Task, args: Mapping[str, Any] | None = None,
                      **options: Any) -> int:
        name, options = _task_options(task, options)
        return await enqueue_async(self._conn, name, args, batch=self, **options)

    async def enqueue_many(self, jobs: Iterable[JobSpec]) -> list[int]:
        return await enqueue_many_async(self._conn, jobs, batch=self)

    async def seal(self) -> bool:
        if self._sealed:
            return False
        self._sealed = True
        return bool(await run_steps_async(self._conn,
                                          _value("batch_seal", {"batch_id": self.id})))


@contextmanager
def batch(conn: SyncHandle, *, name: str | None = None, callback: str | Task | None = None,
          callback_args: Mapping[str, Any] | None = None,
          callback_queue: str | None = None) -> Iterator[Batch]:
    """Open a batch on ``conn``, yield it, and seal it when the block ends normally.

    Args:
        conn: the caller's connection (or cursor); pgqueue never commits it.
        name: a label for people (1-200 characters), shown by ``pgqueue batch``.
        callback: a task name or :class:`pgqueue.Task` enqueued once when the
            batch finishes, with ``callback_args`` plus ``batch_id``.
        callback_args: a JSON object (dict) for the callback; ``batch_id`` is
            pgqueue's key.
        callback_queue: the callback's queue; default the Task's queue, else
            ``default``.

    If the block raises, the batch is not sealed and the exception propagates:
    let it roll back the transaction (``with conn:`` or ``conn.transaction()``
    do), and neither the batch nor its jobs will exist. A batch whose jobs were
    committed but that never got sealed stays open; ``SELECT
    pgqueue.seal_batch(id)`` seals it.

    Example::

        with psycopg.connect(dsn) as conn, pgqueue.batch(conn, callback="report") as b:
            b.enqueue_many({"task": "cancel_offer", "args": {"offer": o}} for o in offers)
        # committed and sealed: report(batch_id=b.id) runs once all have finished
    """
    params = _create_params(name, callback, callback_args, callback_queue)
    opened = Batch(conn, run_steps(conn, _value("batch_create", params)))
    yield opened
    opened.seal()


@asynccontextmanager
async def batch_async(conn: AsyncHandle, *, name: str | None = None,
                      callback: str | Task | None = None,
                      callback_args: Mapping[str, Any] | None = None,
                      callback_queue: str | None = None) -> AsyncIterator[AsyncBatch]:
    """:func:`batch` for an AsyncConnection: ``async with pgqueue.batch_async(aconn) as b``."""
    params = _create_params(name, callback, callback_args, callback_queue)
    opened = AsyncBatch(conn, await run_steps_async(conn, _value("batch_create", params)))
    yield opened
    await opened.seal()


def get_batch(conn: SyncHandle, batch_id: int) -> BatchInfo | None:
    """The batch's counts and times (a ``pgqueue.batches`` row), or None if unknown."""
    rows = run_steps(conn, _rows("batch_get", {"batch_id": _check_id(batch_id)}))
    return BatchInfo(*rows[0]) if rows else None


async def get_batch_async(conn: AsyncHandle, batch_id: int) -> BatchInfo | None:
    """:func:`get_batch` for an AsyncConnection."""
    rows = await run_steps_async(conn, _rows("batch_get", {"batch_id": _check_id(batch_id)}))
    return BatchInfo(*rows[0]) if rows else None


def list_batches(conn: SyncHandle, *, limit: int = 50,
                 before_id: int | None = None) -> list[BatchInfo]:
    """Batches newest first; ``before_id`` (the last id of a page) pages on."""
    params = {"limit": validate_limit(limit),
              "before_id": None if before_id is None else _check_id(before_id, "before_id")}
    return [BatchInfo(*row) for row in run_steps(conn, _rows("batch_list", params))]


# --- shared, without I/O ---------------------------------------------------------------


def _value(name: str, params: dict[str, Any]) -> Steps:
    rows = yield query(name), params
    return rows[0][0]


def _rows(name: str, params: dict[str, Any]) -> Steps:
    rows = yield query(name), params
    return rows


def _task_options(task: str | Task, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if "batch" in options:
        raise InvalidJobError("the job joins this batch already: do not pass batch=")
    if isinstance(task, Task):
        defaults = {"queue": task.queue, "priority": task.priority,
                    "max_attempts": task.max_attempts}
        return task.name, {**defaults, **options}
    return task, options


def _create_params(name: object, callback: object, callback_args: object,
                   callback_queue: object) -> dict[str, Any]:
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX
                             or "\x00" in name):
        raise InvalidArgumentError(f"name must be a string of 1 to {NAME_MAX} characters "
                                   "(no NUL), or None")
    task: str | None = None
    if isinstance(callback, Task):
        task = callback.name
        if callback_queue is None:
            callback_queue = callback.queue
    elif callback is not None:
        task = _params.validate_task(callback, field="callback")
    if task is None and (callback_args is not None or callback_queue is not None):
        raise InvalidJobError("callback_args and callback_queue need a callback")
    if isinstance(callback_args, Mapping) and "batch_id" in callback_args:
        raise InvalidJobError("callback_args must not hold 'batch_id': pgqueue sets it")
    try:
        args_json = None if callback_args is None else _params.dump_args(callback_args)
    except InvalidJobError as exc:
        raise InvalidJobError(f"callback_args: {exc}") from None
    return {
        "name": name,
        "callback_task": task,
        "callback_args": args_json,
        "callback_queue": None if callback_queue is None
        else _params.validate_queue(callback_queue, field="callback_queue"),
    }


def _check_id(batch_id: object, name: str = "batch_id") -> int:
    if isinstance(batch_id, bool) or not isinstance(batch_id, int) or not 1 <= batch_id <= _MAX_ID:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {batch_id!r}")
    return batch_id
