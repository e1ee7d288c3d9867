"""The worker's assembler: builds its sessions and services, attaches subscribers.

A worker is a few services around one event loop, each in a module of its own
and each testable alone: listener (:mod:`.listener`, its own connection;
none behind a transaction pooler without a direct ``listen_dsn``),
fetcher (:mod:`.fetcher`, the claim session), slots (:mod:`.slots`, running
attempts through :mod:`.executor`), completer (:mod:`.completer`, the complete
session), reporter (:mod:`.reporter`, progress and meta while jobs run, on the
complete session), maintenance (:mod:`.maintenance`, the claim session) and the start
and stop steps (:mod:`.lifecycle`, the claim session). The services emit
events and know nothing of logging formats, metrics or tracing: this module is
the one place that imports :mod:`pgqueue.observability`, attaches its
subscribers, and passes the tracing wrapper in as the attempt runner (with
``tracing=False`` OpenTelemetry is never imported).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .. import _dsn
from ..errors import DatabaseUnavailableError, TaskError
from ..events import Event, Subscriber, WorkerStarted, WorkerStopped
from ..retention import RetentionSpec, parse_retention
from ..tasks import Registry
from ..types import Job
from .cancellation import cancel_and_wait
from .completer import Completer
from .config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_LOG_SUMMARY_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_POOLER_POLL_INTERVAL,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    QueueSpec,
    WorkerConfig,
    parse_queues,
)
from .executor import AttemptRunner, Outcome, run_attempt
from .fetcher import ClaimFilter, Fetcher
from .handler_pools import HandlerPools
from .key_rounds import KeyRounds
from .lifecycle import connect, run_with_signals, shut_down
from .listener import Listener
from .maintenance import Maintenance
from .reporter import Reporter
from .session import Session
from .slots import Slots
from .turns import QueueTurns

__all__ = ["Worker"]

logger = logging.getLogger("pgqueue.worker")


@dataclass(frozen=True, slots=True)
class _Services:
    """One run's services, as :meth:`Worker._assemble` wired them."""

    completer: Completer
    reporter: Reporter
    slots: Slots
    fetcher: Fetcher
    maintenance: Maintenance
    listener: Listener | None
    pools: HandlerPools


class Worker:
    """A worker process's job loop. ``run()`` blocks; ``run_async()`` embeds it.

    Example::

        worker = pgqueue.Worker(tasks, dsn=dsn, queues=["email"], concurrency=20)
        worker.run()  # until SIGTERM or SIGINT

    ``queues`` names the queues, each optionally with local slots and a weight:
    ``{"email": 10}`` (10 slots), ``{"critical": pgqueue.QueueSpec(weight=6),
    "low": pgqueue.QueueSpec(slots=2, weight=1)}``, or specs as ``--queues``
    takes them (``["critical=w6", "low=2:w1", "tenants=fair"]``; a fair queue's
    jobs take turns by ``concurrency_key``). ``queue_order`` (``priority``,
    ``weighted`` or ``strict``; default ``weighted`` when a weight is given,
    else ``priority``) says how claims share out among them
    (:class:`~.config.WorkerConfig`).

    Behind a transaction-mode pooler (PgBouncer's ``pool_mode = transaction``)
    pass ``pooler="transaction"`` (or set PGQUEUE_POOLER): the worker's
    sessions then prepare nothing server-side and set no session setting, and
    it LISTENs only on ``listen_dsn`` (PGQUEUE_LISTEN_DSN), a direct connection
    past the pooler; without one it polls every 0.5 s unless ``poll_interval``
    says otherwise. ``pooler="session"`` behaves as ``"none"``: a session-mode
    pooler keeps each client on one server session.

    ``retention``: how long the leader keeps finished jobs in history, by final
    state (default: succeeded 1 day, cancelled 7 days, failed 30 days):
    ``"succeeded=12h,failed=off"`` (the states not named keep their default),
    ``{"failed": timedelta(days=90)}``, ``"off"`` (keep everything), or a
    :class:`pgqueue.retention.Retention`. Give every worker the same: the
    leader's applies. Queues override it with :func:`pgqueue.set_retention`.

    ``transaction_pool_size``: the most connections each of the two pools
    behind ``ctx.transaction()`` opens (one asyncio, one threaded; default the
    concurrency). No pool opens until a handler asks for its transaction.
    """

    def __init__(self, registry: Registry, *, dsn: str | None = None,
                 queues: Iterable[str] | Mapping[str, int | QueueSpec] | None = None,
                 queue_order: str | None = None, concurrency: int | None = None,
                 poll_interval: float | None = None,
                 heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
                 stall_timeout: float = DEFAULT_STALL_TIMEOUT,
                 shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
                 worker_id: str | None = None, log_events: bool = True,
                 rng: random.Random | None = None, metrics_port: int | None = None,
                 tracing: bool = True, pooler: str | None = None,
                 listen_dsn: str | None = None,
                 retention: RetentionSpec = None,
                 log_summary_interval: float = DEFAULT_LOG_SUMMARY_INTERVAL,
                 transaction_pool_size: int | None = None) -> None:
        resolved = _dsn.resolve_dsn(dsn)
        if not resolved:
            raise DatabaseUnavailableError(
                "no database given: pass dsn=... or set PGQUEUE_DSN or DATABASE_URL")
        if not len(registry):
            raise TaskError("the registry has no tasks: nothing to run")
        self.registry = registry
        self.dsn = resolved
        pooler = _dsn.resolve_pooler(pooler)
        # Where LISTEN runs: a direct DSN when given; none behind a transaction
        # pooler without one (the fetcher polls); else the worker's own DSN.
        self.listen_dsn = _dsn.resolve_listen_dsn(listen_dsn) or (
            None if pooler == "transaction" else resolved)
        if poll_interval is None:
            poll_interval = DEFAULT_POLL_INTERVAL if self.listen_dsn \
                else DEFAULT_POOLER_POLL_INTERVAL
        parsed = parse_queues(queues)
        names, slots = parsed.names, parsed.slots
        if concurrency is None:
            covered = names is not None and set(slots) == set(names)
            concurrency = sum(slots.values()) if covered else DEFAULT_CONCURRENCY
        self.config = WorkerConfig(
            queues=names, concurrency=concurrency, queue_slots=slots,
            queue_weights=parsed.weights, queue_order=queue_order,
            fair_queues=frozenset(parsed.fair),
            poll_interval=poll_interval, heartbeat_interval=heartbeat_interval,
            stall_timeout=stall_timeout, shutdown_timeout=shutdown_timeout,
            startup_timeout=startup_timeout, pooler=pooler,
            retention=parse_retention(retention),
            log_summary_interval=log_summary_interval,
            transaction_pool_size=transaction_pool_size)
        self.queues = list(self.config.queues or registry.queues)
        self._claims = ClaimFilter.of(registry, self.queues)
        self.id = worker_id or str(uuid.uuid4())
        self._rng = rng
        self._subscribers: list[Subscriber] = []
        self._metrics_port = metrics_port
        self.metrics_server: Any = None
        self._run_attempt: AttemptRunner = run_attempt
        self._attach_observability(log_events=log_events, tracing=tracing)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._slots: Slots | None = None
        self._fetcher: Fetcher | None = None

    def _attach_observability(self, *, log_events: bool, tracing: bool) -> None:
        """Observability subscribes here; the services only emit events."""
        if log_events:
            from ..observability.log_summary import QueueSummary
            from ..observability.logs import log_event

            # The summary first: its last line comes before "worker stopped".
            if self.config.log_summary_interval:
                self._subscribers.append(QueueSummary(self.config.log_summary_interval))
            self._subscribers.append(log_event)
        if self._metrics_port is not None:
            if not 0 <= self._metrics_port <= 65535:
                raise ValueError(f"metrics_port must be 0 to 65535, got {self._metrics_port!r}")
            from ..observability.metrics import WorkerMetrics

            self._subscribers.append(WorkerMetrics(self.dsn))
        if tracing:
            from ..observability.tracing import traced_attempts

            self._run_attempt = traced_attempts(run_attempt, dsn=self.dsn)

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
        if self._fetcher is not None:
            self._fetcher.wake()

    @property
    def running_job_ids(self) -> list[int]:
        return [] if self._slots is None else list(self._slots.running)

    def run(self) -> None:
        """Run until SIGTERM/SIGINT (graceful), a second signal ends at once."""
        asyncio.run(run_with_signals(self.run_async, self.stop, worker_id=self.id))

    async def run_async(self) -> None:
        """Run on the current event loop until :meth:`stop` is called."""
        self._loop = asyncio.get_running_loop()
        stop = self._stop = asyncio.Event()
        if self._metrics_port is not None and self.metrics_server is None:
            from ..observability.metrics import serve_or_warn

            self.metrics_server = serve_or_warn(self._metrics_port)
        threads = ThreadPoolExecutor(max_workers=self.config.concurrency,
                                     thread_name_prefix="pgqueue-job")
        # Three connections per worker process: the listener's (none when it
        # polls instead), the claim session (claims, start-up and shutdown,
        # heartbeats, the leader lease and the reaper) and the completer's.
        # Claims commit synchronously.
        # synchronous_commit = off on the claim session was measured (it would be
        # safe: a lost claim is requeued by the reaper) and gained nothing once
        # claims are pipelined; worse, until the WAL is flushed the claimed rows'
        # hint bits cannot be set, so their dead entries in jobs_claim_idx cannot
        # be skipped and each claim rescans them.
        pooled = self.config.pooled
        claim = Session(self.dsn, name="claim", pooled=pooled)
        complete = Session(self.dsn, name="complete", pooled=pooled)
        parts = self._assemble(claim, complete, threads, stop)
        if self._stop_requested:
            self._signal_stop()
        services: list[asyncio.Task[None]] = []
        try:
            if not await connect(claim, parts.maintenance.register, worker_id=self.id,
                                 startup_timeout=self.config.startup_timeout, stop=stop,
                                 emit=self._emit):
                return
            expected = tuple((t.queue, t.name) for t in self.registry if t.queue in self.queues)
            self._emit(WorkerStarted(self.id, tuple(self.queues), self.config.concurrency,
                                     expected))
            services = [
                asyncio.create_task(parts.maintenance.run(), name="pgqueue-maintenance"),
                asyncio.create_task(parts.completer.run(), name="pgqueue-completer"),
                asyncio.create_task(parts.reporter.run(), name="pgqueue-reporter"),
            ]
            if parts.listener is not None:
                services.append(asyncio.create_task(parts.listener.run(),
                                                    name="pgqueue-listener"))
            await parts.fetcher.run()
            await shut_down(claim, parts.slots, parts.completer, services[0],
                            worker_id=self.id, shutdown_timeout=self.config.shutdown_timeout,
                            resign=parts.maintenance.resign, emit=self._emit)
        finally:
            await parts.reporter.close()  # not cancelled mid-statement
            await cancel_and_wait(services)
            for session in (claim, complete):
                await session.close()
            await parts.maintenance.close()
            await parts.pools.close()
            threads.shutdown(wait=False, cancel_futures=True)
            self._emit(WorkerStopped(self.id))
            if self.metrics_server is not None:
                self.metrics_server.close()
                self.metrics_server = None

    def _assemble(self, claim: Session, complete: Session, threads: ThreadPoolExecutor,
                  stop: asyncio.Event) -> _Services:
        """Build the services on their sessions and wire them to one another."""
        # The fetcher, built last, needs the slots; these two reach it once it exists.
        def retry_scheduled(delay_seconds: float) -> None:
            fetcher.retry_scheduled(delay_seconds)

        def job_finished(job: Job, outcome: Outcome | None) -> None:
            fetcher.job_finished(job, outcome)

        completer = Completer(complete, self.id, self._emit, retry_scheduled)
        # Handler connections (ctx.transaction()): none open until a handler asks.
        pools = HandlerPools(self.dsn, self.id, size=self.config.handler_pool_size,
                             pooled=self.config.pooled)
        reporter = Reporter(complete, self.id, self._emit)
        slots = self._slots = Slots(
            self.registry, self.id, concurrency=self.config.concurrency,
            queue_slots=self.config.queue_slots, run_attempt=self._run_attempt,
            threads=threads, on_outcome=completer.submit,
            on_finished=job_finished,
            emit=self._emit, stop=stop, stop_requested=lambda: self._stop_requested,
            rng=self._rng, on_report=reporter.track, pools=pools)
        order = self.config.order
        turns = None if order == "priority" else QueueTurns(
            self.queues, order, self.config.queue_weights)
        fair = self.config.fair_queues
        rounds = KeyRounds(self.queues, fair) if fair else None
        fetcher = self._fetcher = Fetcher(claim, self.id, self._claims, slots,
                                          poll_interval=self.config.poll_interval,
                                          emit=self._emit, stop=stop, turns=turns,
                                          rounds=rounds)
        maintenance = Maintenance(
            claim, self.id, self.config, self.queues, self.registry.names,
            held_ids=lambda: slots.held() + completer.held(),
            emit=self._emit, on_cancel=slots.cancel, schedules=self.registry.schedules)
        listener = None if self.listen_dsn is None else Listener(
            self.listen_dsn, self.id, on_notify=self._notified, on_gap=fetcher.poke,
            emit=self._emit, check_interval=self.config.poll_interval)
        return _Services(completer, reporter, slots, fetcher, maintenance, listener, pools)

    def _notified(self, channel: str, payload: str) -> None:
        """Route a notification: new jobs and resumed queues wake the fetcher,
        a cancel request goes to the slots."""
        assert self._fetcher is not None and self._slots is not None
        if channel == "pgqueue_jobs":
            if payload in self.queues:
                self._fetcher.poke()
            return
        kind, _, value = payload.partition(":")
        if kind == "cancel" and value.isdigit():
            self._slots.cancel([int(value)])
        elif kind == "resume" and value in self.queues:
            self._fetcher.poke()

    def _emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber failed", extra={"event": event.name})
