"""Write what running attempts report (progress, meta) while they run.

A handler's ``ctx.set_progress`` and ``ctx.update_meta`` only record the report
in its context (the latest progress, every meta key set) and, on the first
report since the last write, hand the context to :meth:`Reporter.track`. The
reporter then writes the pending reports of every attempt in one statement
(job_report_many.sql), at most once per ``interval_seconds``: an attempt that
reports a thousand times a second costs a few writes a second.

Invariants:
- every write is fenced like an outcome (job id, claim token, worker id, state
  ``running``): a stale attempt, whose job was reclaimed, writes nothing;
- a write carries everything the attempt reported so far (the latest progress,
  every meta key it set), so a failed or overtaken write loses nothing;
- what is not written when the attempt ends goes with its outcome
  (:func:`~.executor.with_updates`), in the outcome's own statement, so the
  final report is in history; a report write that lands after the outcome
  finds the job no longer running under that claim, and changes nothing.
Uses the complete session (shared with the completer); logs nothing itself.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from ..events import Event, ServiceError, ServiceRecovered
from ..types import JobContext, JobUpdates
from .completer import sql_array
from .session import Session, is_connection_error

__all__ = ["REPORT_INTERVAL_SECONDS", "Reporter"]

REPORT_INTERVAL_SECONDS = 0.5
"""The shortest time between two report writes of one worker."""

_BACKOFF_MAX_SECONDS = 5.0


class Reporter:
    """Batches attempts' reports into fenced writes on the complete session."""

    def __init__(self, session: Session, worker_id: str, emit: Callable[[Event], None], *,
                 interval_seconds: float = REPORT_INTERVAL_SECONDS) -> None:
        self._session = session
        self._worker_id = worker_id
        self._emit = emit
        self._interval = interval_seconds
        # Appended from any thread (deque.append is atomic), emptied on the loop.
        self._pending: collections.deque[JobContext] = collections.deque()
        self._wake = asyncio.Event()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_write = 0.0
        self._failures = 0
        self._closing = False
        self._idle = asyncio.Event()  # no write in flight
        self._idle.set()

    def track(self, ctx: JobContext) -> None:
        """Note that ``ctx`` has reports to write (from any thread, at once)."""
        self._pending.append(ctx)
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop is closed: the worker is gone
                pass

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._pending:
            self._wake.set()
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            wait = self._last_write + self._interval - time.monotonic()
            if wait > 0 and not self._closing:
                await asyncio.sleep(wait)
            if self._closing:
                return
            self._scheduled = False  # a report from here on wakes the next round
            batch = self._take()
            if not batch:
                continue
            self._idle.clear()
            try:
                await self.write(batch)
            except Exception as exc:
                self._failed(exc, batch)
                self._idle.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_SECONDS)
                self._wake.set()  # the batch is pending again
                continue
            self._idle.set()
            backoff = 0.1
            self._last_write = time.monotonic()
            if self._failures:
                self._emit(ServiceRecovered(self._worker_id, "reporter", self._failures))
                self._failures = 0

    async def close(self, timeout: float = 1.0) -> None:
        """Stop after the write in flight, if any (within ``timeout``); the reports of
        attempts still running are not written (their jobs are being handed back)."""
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            pass

    def _take(self) -> list[tuple[JobContext, JobUpdates]]:
        batch: dict[int, tuple[JobContext, JobUpdates]] = {}
        pending = self._pending
        while pending:
            ctx = pending.popleft()
            if id(ctx) in batch:
                continue
            updates = ctx.take_updates()
            if updates is not None:
                batch[id(ctx)] = (ctx, updates)
        return list(batch.values())

    async def write(self, batch: list[tuple[JobContext, JobUpdates]]) -> set[int]:
        """Write the reports of ``batch`` in one fenced statement; the ids applied."""
        batch = sorted(batch, key=lambda item: item[0].job.id)  # rows locked in id order
        rows = await self._session.fetch("job_report_many", {
            "ids": sql_array([ctx.job.id for ctx, _ in batch]),
            "tokens": sql_array([ctx.job.claim_token for ctx, _ in batch]),
            "progress": sql_array([u.progress_json for _, u in batch]),
            "meta": sql_array([u.meta_json for _, u in batch]),
            "worker_id": self._worker_id,
        })
        for ctx, updates in batch:
            ctx.updates_written(updates.version)
        return {row[0] for row in rows}

    def _failed(self, exc: Exception, batch: list[tuple[JobContext, JobUpdates]]) -> None:
        for ctx, _ in batch:  # written again next round (each write carries it all)
            self._pending.append(ctx)
        if is_connection_error(exc):
            return  # the completer, on the same session, reports the connection
        self._failures += 1
        self._emit(ServiceError(self._worker_id, "reporter", repr(exc),
                                failures=self._failures))
