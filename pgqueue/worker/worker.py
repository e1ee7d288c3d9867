"""The worker: claims jobs, runs them, writes their outcomes.

Services (each testable alone) around one event loop:
listener (LISTEN), fetcher (this module's claim loop), executor, completer,
maintenance (heartbeat, leader, reaper). They emit events; logging and metrics
subscribe where the worker is assembled.

Invariants:
- claims take at most the room the worker has, in one statement (job_claim.sql).
  While recent jobs are short (average under 50 ms, ``_PREFETCH``) claims
  are pipelined: the worker holds up to ``2 × concurrency`` claimed jobs
  (``4 ×`` while they average under 5 ms), running plus a FIFO waiting for a
  slot, and claims again once a quarter of that is free, so the claim round
  trip overlaps running jobs and claims stay large. With longer
  jobs it holds no more than its free slots, so it never hoards jobs that an
  idle worker elsewhere could start. A claimed job waiting for a slot is
  heartbeated and handed back on stop like a running one;
- every outcome write is fenced (job_complete_many.sql);
- on stop: claim nothing more, let running jobs finish within the grace
  period, write their outcomes, hand back the interrupted and unstarted ones
  at once (fenced on their claim tokens), deregister.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import signal
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .. import _dsn
from ..errors import DatabaseUnavailableError, SchemaNotReadyError, TaskError
from ..events import (
    ConnectionFailed,
    ConnectionLost,
    ConnectionRestored,
    Event,
    JobsHandedBack,
    JobStarted,
    ServiceError,
    Subscriber,
    WorkerStarted,
    WorkerStopped,
)
from ..migrate import latest_version
from ..tasks import Registry
from ..types import Job, JobContext
from .completer import Completer
from .config import DEFAULT_CONCURRENCY, WorkerConfig, parse_queues
from .executor import Outcome, cancelled, run_attempt
from .listener import Listener
from .maintenance import Maintenance
from .session import Session, is_connection_error

__all__ = ["Worker"]

logger = logging.getLogger("pgqueue.worker")

_RECHECK_SECONDS = 0.02
# Claimed jobs a worker may hold, as a multiple of its concurrency, by the
# recent average job duration (a moving average): (shorter than, factor), first
# match wins; longer jobs: factor 1, no prefetch.
_PREFETCH = ((0.005, 4), (0.05, 2))
_AVERAGE_WEIGHT = 0.1


@dataclass(slots=True)
class _Running:
    job: Job
    ctx: JobContext
    task: asyncio.Task[None]


class Worker:
    """A worker process's job loop. ``run()`` blocks; ``run_async()`` embeds it.

    Example::

        worker = pgqueue.Worker(tasks, dsn=dsn, queues=["email"], concurrency=20)
        worker.run()  # until SIGTERM or SIGINT
    """

    def __init__(self, registry: Registry, *, dsn: str | None = None,
                 queues: Iterable[str] | Mapping[str, int] | None = None,
                 concurrency: int | None = None,
                 poll_interval: float = 5.0, heartbeat_interval: float = 5.0,
                 stall_timeout: float = 60.0, shutdown_timeout: float = 30.0,
                 startup_timeout: float = 60.0,
                 worker_id: str | None = None, log_events: bool = True,
                 rng: random.Random | None = None, metrics_port: int | None = None,
                 tracing: bool = True) -> None:
        resolved = _dsn.resolve_dsn(dsn)
        if not resolved:
            raise DatabaseUnavailableError(
                "no database given: pass dsn=... or set PGQUEUE_DSN or DATABASE_URL")
        if not len(registry):
            raise TaskError("the registry has no tasks: nothing to run")
        self.registry = registry
        self.dsn = resolved
        names, slots = parse_queues(queues)
        if concurrency is None:
            covered = names is not None and set(slots) == set(names)
            concurrency = sum(slots.values()) if covered else DEFAULT_CONCURRENCY
        self.config = WorkerConfig(
            queues=names, concurrency=concurrency, queue_slots=slots,
            poll_interval=poll_interval, heartbeat_interval=heartbeat_interval,
            stall_timeout=stall_timeout, shutdown_timeout=shutdown_timeout,
            startup_timeout=startup_timeout)
        self.queues = list(self.config.queues or registry.queues)
        capped = [t for t in registry if t.concurrency_per_key is not None]
        self._key_tasks = [t.name for t in capped]
        self._key_caps = [t.concurrency_per_key for t in capped]
        self.id = worker_id or str(uuid.uuid4())
        self._rng = rng
        self._subscribers: list[Subscriber] = []
        if log_events:
            from ..observability.logs import log_event

            self._subscribers.append(log_event)
        # Observability subscribes here; the services only emit events.
        self._metrics_port = metrics_port
        self.metrics_server: Any = None
        if metrics_port is not None:
            if not 0 <= metrics_port <= 65535:
                raise ValueError(f"metrics_port must be 0 to 65535, got {metrics_port!r}")
            from ..observability.metrics import WorkerMetrics

            self._subscribers.append(WorkerMetrics(resolved))
        from ..observability.tracing import traced_attempts

        self._run_attempt = traced_attempts(run_attempt, enabled=tracing)
        self._running: dict[int, _Running] = {}
        self._ready: collections.deque[Job] = collections.deque()
        self._recheck = _RECHECK_SECONDS
        self._average_seconds: float | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._wake: asyncio.Event | None = None
        self._look = True
        self._more = False
        self._next_due: float | None = None
        self._completer: Completer | None = None

    # --- public ---------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(event)`` on the worker's loop for every event."""
        self._subscribers.append(subscriber)

    def stop(self) -> None:
        """Ask the worker to stop gracefully. Safe from any thread or signal handler."""
        self._stop_requested = True
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._signal_stop)
            except RuntimeError:  # loop already closed
                pass

    def _signal_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        self._poke_wake()

    @property
    def running_job_ids(self) -> list[int]:
        return list(self._running)

    def run(self) -> None:
        """Run until SIGTERM/SIGINT (graceful), a second signal ends at once."""
        asyncio.run(self._run_with_signals())

    async def run_async(self) -> None:
        """Run on the current event loop until :meth:`stop` is called."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        if self._metrics_port is not None and self.metrics_server is None:
            from ..observability.metrics import serve_or_warn

            self.metrics_server = serve_or_warn(self._metrics_port)
        threads = ThreadPoolExecutor(max_workers=self.config.concurrency,
                                     thread_name_prefix="pgqueue-job")
        self._threads = threads
        # Three connections per worker process: the listener's, this one (claims,
        # heartbeats, the leader lock and the reaper) and the completer's.
        # Claims commit synchronously. synchronous_commit = off on this session
        # was measured (it would be safe: a lost claim is requeued by the reaper)
        # and gained nothing once claims are pipelined; worse, until the WAL is
        # flushed the claimed rows' hint bits cannot be set, so their dead entries
        # in jobs_claim_idx cannot be skipped and each claim rescans them.
        claim = Session(self.dsn, name="claim")
        complete = Session(self.dsn, name="complete")
        self._completer = Completer(complete, self.id, self._emit, self._retry_scheduled)
        maintenance = Maintenance(claim, self.id, self.config, self.queues,
                                  self.registry.names, held_ids=self._held_ids, emit=self._emit,
                                  on_cancel=self._cancel_running,
                                  schedules=self.registry.schedules)
        listener = Listener(self.dsn, self.id, on_notify=self._notified, on_gap=self._poke,
                            emit=self._emit, check_interval=self.config.poll_interval)
        services: list[asyncio.Task[None]] = []
        try:
            if not await self._connect(claim, maintenance):
                return
            self._emit(WorkerStarted(self.id, tuple(self.queues), self.config.concurrency))
            services = [
                asyncio.create_task(listener.run(), name="pgqueue-listener"),
                asyncio.create_task(maintenance.run(), name="pgqueue-maintenance"),
                asyncio.create_task(self._completer.run(), name="pgqueue-completer"),
            ]
            await self._fetch_loop(claim, threads)
            await self._shutdown(claim, maintenance, services[1])
        finally:
            for service in services:
                service.cancel()
            await asyncio.gather(*services, return_exceptions=True)
            for session in (claim, complete):
                await session.close()
            threads.shutdown(wait=False, cancel_futures=True)
            self._emit(WorkerStopped(self.id))
            if self.metrics_server is not None:
                self.metrics_server.close()
                self.metrics_server = None

    # --- the fetcher ------------------------------------------------------------

    async def _fetch_loop(self, claim: Session, threads: ThreadPoolExecutor) -> None:
        assert self._stop is not None and self._wake is not None
        poll_deadline = time.monotonic()
        failing = False
        backoff = 0.1
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= poll_deadline:
                self._look = True
                poll_deadline = now + self.config.poll_interval
            if self._next_due is not None and now >= self._next_due:
                self._look = True
                self._next_due = None
            room = self._capacity() - len(self._running) - len(self._ready)
            if self._look and room >= self._claim_min():
                self._look = False
                try:
                    jobs = await self._claim(claim, room)
                    self._more = len(jobs) == room
                    if jobs:
                        self._recheck = _RECHECK_SECONDS
                        # Start them before anything else: the next-due look-up
                        # below is one more round trip.
                        self._ready.extend(jobs)
                        self._fill(claimed_now=True)
                    if not self._more:
                        if jobs:
                            # Let the jobs just started run their first step
                            # before this loop builds and sends the look-up.
                            await asyncio.sleep(0)
                        await self._schedule_next_due(claim)
                except Exception as exc:
                    if not is_connection_error(exc):
                        self._emit(ServiceError(self.id, "fetcher", repr(exc)))
                    elif not failing:
                        self._emit(ConnectionLost(self.id, "fetcher", str(exc).strip()))
                    failing = True
                    self._look = True
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if failing:
                    failing = False
                    self._emit(ConnectionRestored(self.id, "fetcher"))
                backoff = 0.1
                if jobs:
                    continue
            timeout = poll_deadline - time.monotonic()
            if self._next_due is not None:
                timeout = min(timeout, self._next_due - time.monotonic())
            await self._sleep(max(0.0, timeout))

    def _prefetch_factor(self) -> int:
        average = self._average_seconds
        if average is not None:
            for shorter_than, factor in _PREFETCH:
                if average < shorter_than:
                    return factor
        return 1

    def _capacity(self) -> int:
        """How many claimed jobs this worker may hold now."""
        return self._prefetch_factor() * self.config.concurrency

    def _claim_min(self) -> int:
        """Room needed before claiming: a quarter of what it may hold while
        prefetching (so claims stay large), else one slot."""
        factor = self._prefetch_factor()
        if factor == 1 or (not self._running and not self._ready):
            return 1
        return max(1, factor * self.config.concurrency // 4)

    def _record_duration(self, seconds: float) -> None:
        average = self._average_seconds
        self._average_seconds = seconds if average is None else \
            average + _AVERAGE_WEIGHT * (seconds - average)

    def _fill(self, *, claimed_now: bool = False) -> None:
        """Start claimed jobs while slots are free.

        Once stopping, only jobs of a claim that was in flight when the stop came
        (``claimed_now``) still take free slots, as they would have unbuffered;
        the rest wait to be handed back.
        """
        assert self._threads is not None and self._stop is not None
        if self._stop.is_set() and not claimed_now:
            return
        caps = self.config.queue_slots
        if not caps:
            while self._ready and len(self._running) < self.config.concurrency:
                self._start(self._ready.popleft(), self._threads)
            return
        # Local slots: a job whose queue is full waits; later jobs may pass it.
        running_in = collections.Counter(r.job.queue for r in self._running.values())
        waiting: collections.deque[Job] = collections.deque()
        while self._ready and len(self._running) < self.config.concurrency:
            job = self._ready.popleft()
            cap = caps.get(job.queue)
            if cap is not None and running_in[job.queue] >= cap:
                waiting.append(job)
            else:
                running_in[job.queue] += 1
                self._start(job, self._threads)
        waiting.extend(self._ready)
        self._ready = waiting

    async def _sleep(self, timeout: float) -> None:
        assert self._wake is not None
        if not self._wake.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
        self._wake.clear()

    async def _claim(self, claim: Session, limit: int) -> list[Job]:
        rows = await claim.fetch("job_claim", {
            "queues": self.queues, "slots": self._rooms(limit), "tasks": self.registry.names,
            "limit": limit, "worker_id": self.id, "key_tasks": self._key_tasks,
            "key_caps": self._key_caps,
            # Idle: the claim's commit need not wait for the WAL flush (it is
            # the wake-up latency). Busy: claims overlap running jobs anyway,
            # and a synchronous commit lets hint bits be set at once.
            "async_commit": not self._running and not self._ready,
        })
        return [Job(*row) for row in rows]

    def _rooms(self, limit: int) -> list[int]:
        """Room per queue: its free local slots (prefetch included), else ``limit``."""
        caps = self.config.queue_slots
        if not caps:
            return [limit] * len(self.queues)
        factor = self._prefetch_factor()
        held = collections.Counter(r.job.queue for r in self._running.values())
        held.update(j.queue for j in self._ready)
        return [max(0, min(limit, caps[q] * factor - held[q])) if q in caps else limit
                for q in self.queues]

    async def _schedule_next_due(self, claim: Session) -> None:
        queues = [q for q, room in zip(self.queues, self._rooms(1), strict=True) if room]
        if not queues:
            return  # every queue at its local slots: a finishing job wakes the fetcher
        rows = await claim.fetch("job_next_run_at", {"queues": queues,
                                                     "tasks": self.registry.names})
        seconds = rows[0][0] if rows else None
        if seconds is None:
            return
        if seconds <= 0:
            # Due now yet not claimed: another claim held it for a moment, or a
            # per-key cap holds it back. Look again soon, then less and less
            # often; a finishing job of a capped key wakes workers by NOTIFY.
            seconds = self._recheck
            self._recheck = min(self._recheck * 2, self.config.poll_interval)
        self._retry_scheduled(max(seconds, _RECHECK_SECONDS))

    def _retry_scheduled(self, delay_seconds: float) -> None:
        due = time.monotonic() + max(0.0, delay_seconds)
        if self._next_due is None or due < self._next_due:
            self._next_due = due
            self._poke_wake()

    def _notified(self, channel: str, payload: str) -> None:
        if channel == "pgqueue_jobs":
            if payload in self.queues:
                self._poke()
            return
        kind, _, value = payload.partition(":")
        if kind == "cancel" and value.isdigit():
            self._cancel_running([int(value)])
        elif kind == "resume" and value in self.queues:
            self._poke()

    def _cancel_running(self, job_ids: list[int]) -> None:
        """Cancel attempts this worker runs: async ones at once, sync ones by request."""
        for job_id in job_ids:
            waiting = next((j for j in self._ready if j.id == job_id), None)
            if waiting is not None and self._completer is not None:
                self._ready.remove(waiting)
                self._completer.submit(cancelled(waiting, 0.0))
                continue
            item = self._running.get(job_id)
            if item is None or item.ctx.cancel_requested:
                continue
            item.ctx.request_cancel()
            task = self.registry.get(item.job.task)
            if task is not None and task.is_async:
                item.task.cancel()

    def _poke(self) -> None:
        self._look = True
        self._poke_wake()

    def _poke_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # --- running jobs -----------------------------------------------------------

    def _start(self, job: Job, threads: ThreadPoolExecutor) -> None:
        task = self.registry.get(job.task)
        ctx = JobContext(job, self.id)
        assert task is not None  # the claim only takes known tasks
        runner = asyncio.create_task(self._run_job(task, job, ctx, threads),
                                     name=f"pgqueue-job-{job.id}")
        self._running[job.id] = _Running(job, ctx, runner)
        self._emit(JobStarted(self.id, job))

    async def _run_job(self, task: Any, job: Job, ctx: JobContext,
                       threads: ThreadPoolExecutor) -> None:
        outcome: Outcome | None = None
        started = time.perf_counter()
        try:
            outcome = await self._run_attempt(task, job, ctx, threads, self._rng)
        except asyncio.CancelledError:
            if not ctx.cancel_requested or self._stop_requested:
                raise  # shutdown: the job is handed back
            outcome = cancelled(job, time.perf_counter() - started)
        finally:
            self._running.pop(job.id, None)
            if job.queue in self.config.queue_slots:
                self._look = True  # its queue has a free slot again
            if outcome is not None:
                self._record_duration(outcome.duration_seconds)
                if self._completer is not None:
                    self._completer.submit(outcome)
            self._fill()
            if self._more:
                self._look = True
            self._poke_wake()

    def _held_ids(self) -> list[tuple[int, int | None]]:
        """(job id, claim token) of every attempt this process holds."""
        held = [(r.job.id, r.job.claim_token) for r in self._running.values()]
        held.extend((j.id, j.claim_token) for j in self._ready)
        if self._completer is not None:
            held.extend((j.id, j.claim_token) for j in self._completer.pending_jobs)
        return held

    # --- start and stop ---------------------------------------------------------

    async def _connect(self, claim: Session, maintenance: Maintenance) -> bool:
        """Connect, check the schema and register.

        A connection that never succeeded is retried with back-off, each failure
        reported with its reason (:class:`ConnectionFailed`), until
        ``startup_timeout``; then :class:`DatabaseUnavailableError`. Returns False
        when a stop came first.
        """
        assert self._stop is not None
        backoff = 0.5
        give_up_at = time.monotonic() + self.config.startup_timeout
        failed = False
        while not self._stop.is_set():
            try:
                rows = await claim.fetch("migration_versions")
            except Exception as exc:
                if not is_connection_error(exc):
                    detail = getattr(getattr(exc, "diag", None), "message_primary", None)
                    raise SchemaNotReadyError(
                        f"cannot read the pgqueue schema version ({detail or exc}); "
                        "run 'pgqueue migrate'") from exc
                error = _dsn.redact(str(exc).strip())
                left = give_up_at - time.monotonic()
                if left <= 0:
                    raise DatabaseUnavailableError(
                        f"could not connect to the database within "
                        f"{self.config.startup_timeout:g} s (startup_timeout): {error}"
                    ) from None
                failed = True
                wait = min(backoff, left)
                self._emit(ConnectionFailed(self.id, "startup", error, round(wait, 3),
                                            round(left, 3)))
                await self._sleep_stop(wait)
                backoff = min(backoff * 2, 10.0)
                continue
            current = max((r[0] for r in rows), default=0)
            if current < latest_version():
                raise SchemaNotReadyError(
                    f"the database's pgqueue schema is at version {current}, this pgqueue "
                    f"needs {latest_version()}: run 'pgqueue migrate'")
            try:
                await maintenance.register()
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                continue  # connection lost between the check and the register
            if failed:
                self._emit(ConnectionRestored(self.id, "startup"))
            return True
        return False

    async def _sleep_stop(self, timeout: float) -> None:
        assert self._stop is not None
        try:
            async with asyncio.timeout(timeout):
                await self._stop.wait()
        except TimeoutError:
            pass

    async def _shutdown(self, claim: Session, maintenance: Maintenance,
                        maintenance_task: asyncio.Task[None]) -> None:
        assert self._completer is not None
        running = [r.task for r in self._running.values()]
        stopped: list[_Running] = []
        if running:
            _, pending = await asyncio.wait(running, timeout=self.config.shutdown_timeout)
            stopped = list(self._running.values())
            for item in stopped:
                item.ctx.request_stop()
                item.task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        # Handed back: attempts interrupted before their handler finished, and
        # jobs never started. A handler that finished has its outcome with the
        # completer (written, or left to the reaper): its attempt counted.
        interrupted = [r.job for r in stopped if r.task.cancelled() or not r.task.done()]
        interrupted.extend(self._ready)
        self._completer.close()
        await self._completer.drain(timeout=max(5.0, self.config.shutdown_timeout))
        # Heartbeats ran through the grace period; they stop before the hand-back.
        maintenance_task.cancel()
        await asyncio.gather(maintenance_task, return_exceptions=True)
        try:
            if interrupted:
                rows = await claim.fetch("job_hand_back", {
                    "ids": [j.id for j in interrupted],
                    "tokens": [j.claim_token for j in interrupted], "worker_id": self.id})
                if rows:
                    self._emit(JobsHandedBack(self.id, tuple(r[0] for r in rows)))
            await claim.fetch("worker_deregister", {"worker_id": self.id})
            await maintenance.resign()
        except Exception as exc:  # the reaper returns the jobs after the stall timeout
            self._emit(ConnectionLost(self.id, "shutdown", str(exc).strip()))

    async def _run_with_signals(self) -> None:
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                logger.info("stop requested; finishing running jobs",
                            extra={"worker_id": self.id})
                self.stop()
            else:
                logger.warning("second signal: exiting at once", extra={"worker_id": self.id})
                import os

                os._exit(1)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await self.run_async()

    def _emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber failed", extra={"event": event.name})
