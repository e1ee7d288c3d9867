"""Run due jobs in the test's own process, on the test's own connection.

A drain is a worker of concurrency 1 whose statements run on the caller's
connection, inside the caller's transaction (one savepoint per statement, so a
refused write leaves that transaction usable; nothing is committed that the
caller does not commit). It claims with the worker's claim (job_claim), runs
each attempt with the worker's :func:`~pgqueue.worker.executor.run_attempt`,
and writes outcomes with the worker's :class:`~pgqueue.worker.completer.Completer`
(job_complete_many, then job_after_finish for dependents and batches).

Invariants:
- jobs run one at a time, in the worker's claim order (priority, run_at, id);
  a job a handler enqueues on the same connection is claimed like any other;
- each job runs at most one attempt per drain: a job retried during the drain
  stays queued even when its retry falls due before the drain ends (the claim
  that took it again is rolled back, and the drain stops there);
- at most ``limit`` attempts run; what is still due afterwards is reported.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

import psycopg
from psycopg.rows import TupleRow

from .._sql import query
from ..errors import PgQueueError
from ..events import Event, JobFinished, JobLost, OutcomeRewritten, ServiceError
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
from ..types import Job, JobContext
from ..worker.completer import Completer
from ..worker.executor import Outcome, run_attempt
from ..worker.fetcher import ClaimFilter, claim_params
from .assertions import EnqueuedJob, job_params, read_jobs

__all__ = ["DEFAULT_LIMIT", "DrainContext", "DrainError", "DrainResult", "RanJob", "drain",
           "drain_async"]

DEFAULT_LIMIT = 1000

_P = ParamSpec("_P")
_T = TypeVar("_T")


class DrainError(PgQueueError):
    """A drain could not write an outcome the way a worker would (the database
    refused it in every form); the message says which job and why."""


class DrainContext(JobContext):
    """The :class:`~pgqueue.JobContext` a drain gives handlers: the worker's,
    plus ``connection``, the connection the drain runs on (a handler written for
    tests may enqueue on it; a worker's context has no such attribute)."""

    __slots__ = ("connection",)

    def __init__(self, job: Job, worker_id: str,
                 connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
        super().__init__(job, worker_id)
        self.connection = connection


@dataclass(frozen=True, slots=True)
class RanJob:
    """One attempt a drain ran, and how it ended as written to the database.

    ``outcome``: ``succeeded``, ``retried`` (queued again, due after
    ``retry_in_seconds``), ``snoozed`` (the same, its attempt not counted),
    ``failed``, ``cancelled``, or ``lost`` (the fenced
    write found the row changed under it: nothing was written).
    """

    id: int
    task: str
    queue: str
    args: Any
    attempt: int
    outcome: str
    result: Any = None
    error: str | None = None
    error_kind: str | None = None
    retry_in_seconds: float | None = None
    duration_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What a drain ran, in order, and the due jobs it left queued.

    Iterating, ``len`` and indexing go over ``jobs``. ``left``: jobs still due
    when the drain ended (of a task the registry does not know, past the limit,
    or behind a job this drain retried). ``limit_reached``: the drain stopped
    at ``limit`` attempts with jobs still due.
    """

    jobs: list[RanJob]
    left: list[EnqueuedJob] = field(default_factory=list)
    limit_reached: bool = False

    def __iter__(self) -> Iterator[RanJob]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> RanJob:
        return self.jobs[index]

    @property
    def outcomes(self) -> list[tuple[str, str]]:
        """(task, outcome) of each attempt, in the order they ran."""
        return [(j.task, j.outcome) for j in self.jobs]

    def with_outcome(self, outcome: str) -> list[RanJob]:
        """The attempts that ended in ``outcome``."""
        return [j for j in self.jobs if j.outcome == outcome]

    @property
    def unknown(self) -> list[EnqueuedJob]:
        """Due jobs left queued because no task of the registry has their name."""
        return [j for j in self.left if not j.known]


class _Link(Protocol):
    """The caller's connection, as the drain and the Completer's session use it."""

    async def fetch(self, name: str, params: dict[str, Any] | None = None) -> list[TupleRow]:
        """Run the named query in a savepoint; return its rows."""

    async def claim(self, params: dict[str, Any], seen: set[int]) -> list[Job] | None:
        """Claim in a savepoint; roll it back and return None if it took a seen job."""


class _SyncLink:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    async def fetch(self, name: str, params: dict[str, Any] | None = None) -> list[TupleRow]:
        with self.conn.transaction(), own_cursor(self.conn) as cur:
            cur.execute(query(name), params, prepare=False)
            return cur.fetchall() if cur.description else []

    async def claim(self, params: dict[str, Any], seen: set[int]) -> list[Job] | None:
        with self.conn.transaction() as tx, own_cursor(self.conn) as cur:
            jobs = [Job(*row) for row in
                    cur.execute(query("job_claim"), params, prepare=False).fetchall()]
            if any(j.id in seen for j in jobs):
                raise psycopg.Rollback(tx)
            return jobs
        return None


class _AsyncLink:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def fetch(self, name: str, params: dict[str, Any] | None = None) -> list[TupleRow]:
        async with self.conn.transaction(), own_async_cursor(self.conn) as cur:
            await cur.execute(query(name), params, prepare=False)
            return await cur.fetchall() if cur.description else []

    async def claim(self, params: dict[str, Any], seen: set[int]) -> list[Job] | None:
        async with self.conn.transaction() as tx, own_async_cursor(self.conn) as cur:
            await cur.execute(query("job_claim"), params, prepare=False)
            jobs = [Job(*row) for row in await cur.fetchall()]
            if any(j.id in seen for j in jobs):
                raise psycopg.Rollback(tx)
            return jobs
        return None


class _Inline(Executor):
    """Runs a sync handler at once, in the drain's own thread (so thread-local
    state such as a framework's connection is the test's)."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args,
               **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the attempt, as a pool would
            future.set_exception(exc)
        return future


@dataclass
class _Drain:
    """One drain's state; :meth:`run` is the loop shared by drain and drain_async."""

    link: _Link
    registry: Registry
    queues: list[str] | None
    tasks: list[str] | None
    limit: int
    connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]
    threads: Executor
    worker_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    finished: dict[int, tuple[str, float | None, str | None]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        if isinstance(event, JobFinished):
            self.finished[event.job.id] = (event.outcome, event.retry_in_seconds, event.error)
        elif isinstance(event, JobLost):
            self.finished[event.job.id] = ("lost", None, None)
        elif isinstance(event, ServiceError):
            self.problems.append(event.error)
        elif not isinstance(event, OutcomeRewritten):
            self.problems.append(repr(event))

    async def run(self) -> DrainResult:
        completer = Completer(self.link, self.worker_id, self.emit)  # type: ignore[arg-type]
        ran: list[RanJob] = []
        seen: set[int] = set()
        while len(ran) < self.limit:
            claims = await self._claims()
            jobs = await self.link.claim(claim_params(
                claims, [1] * len(claims.queues), 1, self.worker_id, async_commit=False), seen)
            if not jobs:
                break
            job = jobs[0]
            seen.add(job.id)
            task = self.registry[job.task]
            ctx = DrainContext(job, self.worker_id, self.connection)
            outcome = await run_attempt(task, job, ctx, self.threads)
            await completer.flush([outcome])
            if self.problems:
                raise DrainError("; ".join(self.problems))
            ran.append(self._ran(outcome))
        params = job_params(queue=None, task=None, queues=self.queues, due_only=True)
        left = read_jobs(await self.link.fetch("job_live_list", params), self.registry)
        claimable = [j for j in left if j.known and (self.tasks is None or j.task in self.tasks)]
        return DrainResult(ran, left, limit_reached=len(ran) >= self.limit and bool(claimable))

    async def _claims(self) -> ClaimFilter:
        queues = self.queues
        if queues is None:
            queues = [row[0] for row in await self.link.fetch("queue_names_list")]
        return ClaimFilter.of(self.registry, queues, self.tasks)

    def _ran(self, o: Outcome) -> RanJob:
        job = o.job
        outcome, retry_in, message = self.finished.get(job.id, ("lost", None, None))
        result = None
        if outcome == o.outcome and o.result_json is not None:
            result = json.loads(o.result_json)
        error = o.error if outcome == o.outcome else None
        if error is None and outcome == "failed" and o.outcome == "snoozed":
            error = {"kind": "snoozed", "message": message}  # past max_snoozes
        return RanJob(job.id, job.task, job.queue, job.args, job.attempt, outcome, result,
                      None if error is None else str(error.get("message")),
                      None if error is None else str(error.get("kind")),
                      retry_in, o.duration_seconds)


def _check(registry: Registry, queues: list[str] | None, tasks: list[str] | None,
           limit: int) -> None:
    if not isinstance(registry, Registry):
        raise TypeError(f"registry must be a pgqueue.Registry, got {type(registry).__name__}")
    if isinstance(queues, str) or isinstance(tasks, str):
        raise TypeError("queues and tasks are lists of names, not a single str")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")


def drain(conn: SyncHandle, registry: Registry, *,
          queues: list[str] | None = None, tasks: list[str] | None = None,
          limit: int = DEFAULT_LIMIT) -> DrainResult:
    """Run every due job (and every job those enqueue) on ``conn``, then return.

    Args:
        conn: the test's connection (psycopg, a SQLAlchemy session or connection, a
            Django connection). Its open transaction (begun if none is)
            holds everything the drain writes; the drain never commits. In
            autocommit mode each statement commits alone, as a worker's do.
        registry: the tasks to run; jobs of other tasks stay queued (see
            :attr:`DrainResult.unknown`).
        queues: only these queues (default: every queue).
        tasks: only these task names (default: every task of ``registry``).
        limit: at most this many attempts (default 1000).

    Sync handlers run in this thread; async handlers on a private event loop
    (call :func:`drain_async` from async code). Example::

        signup(conn, "a@example.com")            # the code under test enqueues
        result = drain(conn, tasks)
        assert result.outcomes == [("send_welcome", "succeeded")]
    """
    _check(registry, queues, tasks, limit)
    check_sync(conn, async_twin="pgqueue.testing.drain_async")
    conn = sync_connection(conn)
    _open_transaction(conn)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("drain() cannot run inside a running event loop; there, "
                           "await pgqueue.testing.drain_async(aconn, ...)")
    state = _Drain(_SyncLink(conn), registry, queues, tasks, limit, conn, _Inline())
    with asyncio.Runner() as runner:
        return runner.run(state.run())


async def drain_async(conn: AsyncHandle, registry: Registry, *,
                      queues: list[str] | None = None, tasks: list[str] | None = None,
                      limit: int = DEFAULT_LIMIT) -> DrainResult:
    """:func:`drain` for an ``AsyncConnection``, on the running event loop. Sync
    handlers run in a thread pool, as in a worker."""
    _check(registry, queues, tasks, limit)
    check_async(conn, sync_twin="pgqueue.testing.drain")
    conn = await async_connection(conn)
    if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        await conn.execute(query("clock_now"), prepare=False)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgqueue-drain") as threads:
        return await _Drain(_AsyncLink(conn), registry, queues, tasks, limit, conn,
                            threads).run()


def _open_transaction(conn: psycopg.Connection[Any]) -> None:
    """Begin the caller's transaction if none is open, so the drain's savepoints
    nest inside it instead of committing blocks of their own."""
    if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        conn.execute(query("clock_now"), prepare=False)
