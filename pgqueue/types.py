"""Values shared by the producer, the worker and the tools: states, jobs, contexts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .errors import TransactionUseError
from .producer.args_json import dump_json
from .progress import meta_patch, progress_value

if TYPE_CHECKING:
    from .worker.transactional import HandlerTransaction

__all__ = ["Job", "JobContext", "JobState", "JobUpdates"]

_EVENT_LOCK = threading.Lock()
# Guards every context's progress and meta: held for a few dict operations (and
# the JSON of one small object when the worker takes them), never for I/O.
_UPDATE_LOCK = threading.Lock()


class JobState(StrEnum):
    """A job's state, spelled as in SQL (type ``pgqueue.job_state``)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed attempt of a job, as the worker sees it."""

    id: int
    queue: str
    task: str
    args: Any
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime
    timeout_seconds: float | None = None
    trace_context: str | None = None
    # The token of the claim that started this attempt: (id, claim_token) names
    # exactly one attempt, and the attempt's outcome is written fenced on it.
    claim_token: int | None = None
    # Its concurrency_key, as the claim returned it (a fair queue's cursor).
    concurrency_key: str | None = None


@dataclass(frozen=True, slots=True)
class JobUpdates:
    """What an attempt reported and the worker has not written yet (see
    :meth:`JobContext.take_updates`): ``version`` counts the attempt's reports;
    ``progress_json`` its latest progress, ``meta_json`` every meta key it set
    (latest values), each None when it reported none."""

    version: int
    progress_json: str | None
    meta_json: str | None


class JobContext:
    """What a handler may know about the attempt it runs, and how it reports.

    A handler receives it by declaring a parameter annotated ``pgqueue.JobContext``.
    ``stop_requested`` turns true when the worker is shutting down, the attempt
    timed out or the job was cancelled (then ``cancel_requested`` is true too): a
    long-running plain function should check it and return early.

    ``set_progress`` and ``update_meta`` record what the attempt reports in
    memory and return at once, from any thread; the worker writes the latest of
    it a few times a second at most, and with the attempt's outcome.
    """

    # Flags, not threading.Events: a worker makes one context per attempt, and
    # most handlers never wait. The Event behind wait_for_stop is made on first
    # use, under _EVENT_LOCK so a stop request cannot slip between the check and
    # the creation.
    __slots__ = ("_cancelled", "_closed", "_meta", "_on_update", "_progress",
                 "_stop_event", "_stopped", "_tracked", "_transaction", "_transactions",
                 "_version", "_written", "job", "worker_id")

    def __init__(self, job: Job, worker_id: str,
                 on_update: Callable[[JobContext], None] | None = None,
                 transactions: Callable[[JobContext], HandlerTransaction] | None = None,
                 ) -> None:
        self.job = job
        self.worker_id = worker_id
        # ctx.transaction(): makes this attempt's transaction on the worker's
        # handler connections; the one made (the executor ends it).
        self._transactions = transactions
        self._transaction: HandlerTransaction | None = None
        self._stopped = False
        self._cancelled = False
        self._stop_event: threading.Event | None = None
        # Reports: the latest progress, every meta key set (latest values), how
        # many reports were made and how many of them are written.
        self._on_update = on_update
        self._progress: dict[str, Any] | None = None
        self._meta: dict[str, Any] | None = None
        self._version = 0
        self._written = 0
        self._tracked = False
        self._closed = False

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def queue(self) -> str:
        return self.job.queue

    @property
    def task(self) -> str:
        return self.job.task

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def max_attempts(self) -> int:
        return self.job.max_attempts

    @property
    def enqueued_at(self) -> datetime:
        return self.job.created_at

    @property
    def started_at(self) -> datetime:
        return self.job.started_at

    @property
    def stop_requested(self) -> bool:
        """True once the worker asked this attempt to stop (shutdown, timeout, cancel)."""
        return self._stopped

    @property
    def cancel_requested(self) -> bool:
        """True once someone cancelled this job (``pgqueue.cancel``)."""
        return self._cancelled

    def request_cancel(self) -> None:
        """Mark the job cancelled (called by the worker); also requests a stop."""
        self._cancelled = True
        self.request_stop()

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds for a stop request; return whether one came."""
        with _EVENT_LOCK:
            if self._stop_event is None:
                self._stop_event = threading.Event()
                if self._stopped:
                    self._stop_event.set()
            event = self._stop_event
        return event.wait(timeout)

    def request_stop(self) -> None:
        """Ask the handler to stop (called by the worker)."""
        with _EVENT_LOCK:
            self._stopped = True
            if self._stop_event is not None:
                self._stop_event.set()

    def transaction(self) -> HandlerTransaction:
        """A database transaction in which the job's outcome is written too.

        ``async with ctx.transaction() as conn:`` in an async handler (``conn``
        a ``psycopg.AsyncConnection``), ``with ctx.transaction() as conn:`` in a
        sync one (a ``psycopg.Connection``). The block's statements stay
        uncommitted when it ends; when the handler then returns, the worker
        writes the ``succeeded`` outcome (with the result) in the same
        transaction, fenced on this attempt, and commits: the writes and the
        job's end commit together, once. If the attempt is stale (its job was
        reclaimed), if the handler raises, times out or is stopped, everything
        rolls back. Entered once per attempt; the connection refuses ``commit()``,
        ``rollback()`` and autocommit, and any statement after the block
        (:class:`pgqueue.TransactionUseError`). Example::

            @tasks.task()
            async def credit(account: int, cents: int, ctx: pgqueue.JobContext) -> None:
                async with ctx.transaction() as conn:
                    await conn.execute(
                        "UPDATE accounts SET cents = cents + %s WHERE id = %s",
                        [cents, account])
        """
        if self._transactions is None:
            raise TransactionUseError("ctx.transaction() needs a worker's connections: it "
                                      "runs under pgqueue.Worker (or `pgqueue worker`)")
        if self._transaction is None:
            self._transaction = self._transactions(self)
        return self._transaction  # entering it a second time raises

    def set_progress(self, done: float, total: float | None = None,
                     message: str | None = None) -> None:
        """Record how far the attempt has come: ``done`` of ``total`` (numbers
        >= 0; ``total`` None when unknown), with an optional ``message`` of at most
        200 characters. The latest call wins. Shown in ``pgqueue.running_jobs``,
        ``pgqueue jobs show``, the HTTP API and the dashboard, and kept in history.

        Returns at once (no I/O); raises :class:`pgqueue.InvalidArgumentError`
        for a bad value, and records nothing then. Example::

            for i, row in enumerate(rows):
                ctx.set_progress(i, len(rows), f"row {i}")
        """
        self._record(progress_value(done, total, message), None)

    def update_meta(self, values: Mapping[str, Any]) -> None:
        """Merge ``values`` (a JSON object) into the job's ``meta``: each key
        replaces the key of that name (jsonb ``||``), others stay. Returns at once
        (no I/O); raises :class:`pgqueue.InvalidArgumentError` for values that are
        not a JSON object PostgreSQL can store (or over 64 KiB), recording nothing.
        """
        patch = meta_patch(values)
        if patch:
            self._record(None, patch)

    def _record(self, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> None:
        with _UPDATE_LOCK:
            if self._closed:  # the outcome is taken: a late report is dropped
                return
            if progress is not None:
                self._progress = progress
            if meta is not None:
                if self._meta is None:
                    self._meta = meta
                else:
                    self._meta.update(meta)
            self._version += 1
            notify = None if self._tracked else self._on_update
            self._tracked = notify is not None
        if notify is not None:
            notify(self)

    def take_updates(self, *, final: bool = False) -> JobUpdates | None:
        """What was reported and not yet written (called by the worker), or None.

        Progress is the latest; meta holds every key set in this attempt, so a
        write that is lost or overtaken loses nothing the next one carries.
        ``final``: the attempt has ended; later reports are dropped.
        """
        with _UPDATE_LOCK:
            self._tracked = False
            if self._closed:  # the final take has the rest: it goes with the outcome
                return None
            if final:
                self._closed = True
            if self._version == self._written:
                return None
            return JobUpdates(
                self._version,
                None if self._progress is None else dump_json(self._progress),
                None if self._meta is None else dump_json(self._meta))

    def updates_written(self, version: int) -> None:
        """The reports up to ``version`` are written (called by the worker)."""
        with _UPDATE_LOCK:
            self._written = max(self._written, version)

    def __repr__(self) -> str:
        return f"JobContext(id={self.id}, task={self.task!r}, attempt={self.attempt})"
