"""Prometheus metrics: worker events become counters, histograms and gauges.

- :class:`WorkerMetrics` is a subscriber to a worker's events. While its worker
  leads, it also runs a :class:`~.queue_metrics.QueueSampler`: the queue gauges
  and the per-queue enqueue counter, read from the database every
  ``stats_interval`` seconds.
- Importing this module also counts the jobs this process enqueues, and its
  enqueues a full queue refused or that passed a warn_depth, through the
  producer's hook points.
- :func:`serve` exposes ``/metrics`` over HTTP.

Invariants:
- ``pgqueue_worker_busy_slots`` counts attempts from their start until they
  leave their slot (:class:`~pgqueue.events.AttemptEnded`), not until their
  outcome is written: it never exceeds ``pgqueue_worker_slots``;
- labels are queue and task names (and a job state for queue depth), never job
  ids or args: cardinality is bounded by the application's own tasks;
- every metric lives in prometheus_client's default registry, so several workers
  in one process add up, and an application that already serves ``/metrics``
  exports pgqueue's too;
- with ``PROMETHEUS_MULTIPROC_DIR`` set before prometheus_client is first
  imported (``pgqueue worker --processes N`` does it), each process writes its
  values to files and :func:`serve` in the supervisor sums them: counters and
  histograms over every process that ever ran, slot gauges over live processes,
  queue gauges from the most recent leader.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ..events import (
    AttemptEnded,
    Event,
    JobFinished,
    JobLost,
    JobsHandedBack,
    JobsPruned,
    JobsReclaimed,
    JobStarted,
    LeaderChanged,
    ServiceError,
    WorkerStarted,
    WorkerStopped,
)
from ..producer.hooks import Enqueued, QueueDepth, on_enqueued, on_queue_depth
from ..retention import FINAL_STATES
from .metrics_buffer import MetricsBuffer, SeriesTally  # before the metrics: see its module
from .queue_metrics import (
    DEFAULT_STATS_INTERVAL_SECONDS,
    QueueSampler,
    apply_queue_stats,
    clear_queue_gauges,
    read_queue_stats,
    stats_interval_from_env,
)

__all__ = [
    "DEFAULT_METRICS_PORT",
    "DEFAULT_STATS_INTERVAL_SECONDS",
    "METRIC_NAMES",
    "MetricsServer",
    "WorkerMetrics",
    "apply_queue_stats",
    "clear_queue_gauges",
    "read_queue_stats",
    "serve",
    "serve_or_warn",
]

logger = logging.getLogger("pgqueue.metrics")

DEFAULT_METRICS_PORT = 2112

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                     60.0, 300.0, 1800.0)
_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
                 3600.0)
_JOB = ("queue", "task")

ENQUEUED = Counter("pgqueue_jobs_enqueued", "Jobs this process passed to enqueue or "
                   "enqueue_many (counted when the INSERT ran; the caller's transaction "
                   "may still roll back).", _JOB)
STARTED = Counter("pgqueue_jobs_started", "Attempts started (jobs claimed).", _JOB)
SUCCEEDED = Counter("pgqueue_jobs_succeeded", "Attempts that succeeded.", _JOB)
RETRIED = Counter("pgqueue_jobs_retried", "Failed attempts sent back to the queue for "
                  "another attempt.", _JOB)
FAILED = Counter("pgqueue_jobs_failed", "Jobs that failed for good: by the handler on the "
                 "last attempt, permanently, or by the reaper on the last attempt.", _JOB)
SNOOZED = Counter("pgqueue_jobs_snoozed", "Attempts that snoozed: the job went back to "
                  "the queue without using an attempt (a snooze past max_snoozes counts as "
                  "failed instead).", _JOB)
CANCELLED = Counter("pgqueue_jobs_cancelled", "Attempts that ended cancelled.", _JOB)
RECLAIMED = Counter("pgqueue_jobs_reclaimed", "Running jobs whose heartbeat stalled, taken "
                    "back by the reaper (requeued or failed).", _JOB)
LOST = Counter("pgqueue_jobs_lost", "Outcomes discarded by fencing: the job was no longer "
               "held by this worker when its outcome was written.", _JOB)
DURATION = Histogram("pgqueue_job_duration_seconds", "Run time of one attempt's handler.",
                     _JOB, buckets=_DURATION_BUCKETS)
QUEUE_WAIT = Histogram("pgqueue_job_queue_wait_seconds", "From the job's run_at (when it "
                       "became due) to its claim.", _JOB, buckets=_WAIT_BUCKETS)
BUSY_SLOTS = Gauge("pgqueue_worker_busy_slots", "Job slots running an attempt now.",
                   multiprocess_mode="livesum")
SLOTS = Gauge("pgqueue_worker_slots", "Job slots of running workers (their concurrency).",
              multiprocess_mode="livesum")
ENQUEUE_REFUSED = Counter("pgqueue_enqueue_refused", "Enqueue calls of this process refused: "
                          "the queue was at its max_depth.", ("queue",))
ENQUEUE_OVER_WARN = Counter("pgqueue_enqueue_over_warn_depth", "Enqueue calls of this process "
                            "that took the queue past its warn_depth.", ("queue",))
PRUNED = Counter("pgqueue_jobs_pruned", "Finished jobs the leader's pruner deleted from "
                 "history, older than their retention.", ("queue", "state"))
BATCHES_PRUNED = Counter("pgqueue_batches_pruned", "Finished batches the leader's pruner "
                         "deleted with their last job.")
SERVICE_ERRORS = Counter("pgqueue_service_errors", "Errors of a worker service (fetcher, "
                         "completer, reporter, heartbeat, leader, reaper, expiry, settler, "
                         "compactor, scheduler, pruner) that are not a lost connection: a bug, "
                         "or a statement the database refuses. The service goes on after a "
                         "back-off.", ("service",))

#: Every metric family this module exports, as Prometheus names them.
METRIC_NAMES = (
    "pgqueue_jobs_enqueued_total", "pgqueue_jobs_started_total",
    "pgqueue_jobs_succeeded_total", "pgqueue_jobs_retried_total",
    "pgqueue_jobs_failed_total", "pgqueue_jobs_cancelled_total", "pgqueue_jobs_snoozed_total",
    "pgqueue_jobs_reclaimed_total", "pgqueue_jobs_lost_total",
    "pgqueue_job_duration_seconds", "pgqueue_job_queue_wait_seconds",
    "pgqueue_worker_busy_slots", "pgqueue_worker_slots", "pgqueue_queue_jobs",
    "pgqueue_queue_lag_seconds", "pgqueue_queue_unclaimable_jobs",
    "pgqueue_queue_enqueued_total", "pgqueue_queue_depth", "pgqueue_queue_max_depth",
    "pgqueue_queue_warn_depth", "pgqueue_enqueue_refused_total",
    "pgqueue_enqueue_over_warn_depth_total", "pgqueue_service_errors_total",
    "pgqueue_jobs_pruned_total", "pgqueue_batches_pruned_total",
)

#: The worker services that count errors in ``pgqueue_service_errors_total``.
SERVICES = ("fetcher", "completer", "reporter", "heartbeat", "leader", "reaper", "expiry",
            "settler", "compactor", "scheduler", "pruner")

_OUTCOMES = {"succeeded": SUCCEEDED, "retried": RETRIED, "snoozed": SNOOZED, "failed": FAILED,
             "cancelled": CANCELLED}


def _count_enqueued(event: Enqueued) -> None:
    ENQUEUED.labels(event.queue, event.task).inc(event.count)


def _count_depth(event: QueueDepth) -> None:
    (ENQUEUE_REFUSED if event.refused else ENQUEUE_OVER_WARN).labels(event.queue).inc()


on_enqueued(_count_enqueued)  # the producer's hook points: it never imports this module
on_queue_depth(_count_depth)


class WorkerMetrics:
    """A worker event subscriber that records Prometheus metrics.

    ``dsn`` is where the leader reads the queue metrics; without it they are
    not set. ``stats_interval``: seconds between those reads (default:
    ``$PGQUEUE_METRICS_STATS_INTERVAL``, else 15). Example::

        worker = pgqueue.Worker(tasks, dsn=dsn)
        worker.subscribe(WorkerMetrics(dsn))  # then serve REGISTRY however the app does
    """

    def __init__(self, dsn: str | None = None, *,
                 stats_interval: float | None = None) -> None:
        if stats_interval is None:
            stats_interval = stats_interval_from_env()
        if not stats_interval > 0:
            raise ValueError(f"stats_interval must be > 0 seconds, got {stats_interval!r}")
        self._dsn = dsn
        self._stats_interval = stats_interval
        self._running: set[int] = set()
        self._series: dict[tuple[str, str], SeriesTally] = {}
        self._slots = 0
        self._stats_task: asyncio.Task[None] | None = None
        self._buffer = MetricsBuffer(BUSY_SLOTS)
        # The events of every job, each to its own method; the rest to _other.
        self._by_type: dict[type[Event], Callable[[Any], None]] = {
            JobStarted: self._job_started, JobFinished: self._job_finished,
            AttemptEnded: self._attempt_ended}

    def _children(self, queue: str, task: str) -> SeriesTally:
        """The labelled series of one (queue, task), looked up once per worker:
        ``labels()`` validates and locks on every call, most of the cost of
        recording a job."""
        series = self._series.get((queue, task))
        if series is None:
            # Every outcome's series starts at 0 with the worker (for its tasks
            # in their declared queues) or the first job of its (queue, task):
            # sums and ratios over outcomes never lack a term, and a first
            # failure is an increase from 0.
            series = self._series[(queue, task)] = self._buffer.add(SeriesTally(
                STARTED.labels(queue, task), QUEUE_WAIT.labels(queue, task),
                DURATION.labels(queue, task),
                {name: counter.labels(queue, task) for name, counter in _OUTCOMES.items()}))
            for counter in (RECLAIMED, LOST):
                counter.labels(queue, task)
        return series

    def __call__(self, event: Event) -> None:
        (self._by_type.get(type(event)) or self._other)(event)

    def _job_started(self, event: JobStarted) -> None:
        job = event.job
        series = self._children(job.queue, job.task)
        series.started += 1
        wait = (job.started_at - job.run_at).total_seconds()
        series.queue_wait.observe(max(0.0, wait))
        if job.id not in self._running:
            self._running.add(job.id)
            self._buffer.busy += 1
        self._buffer.touched()

    def _job_finished(self, event: JobFinished) -> None:
        job = event.job
        series = self._children(job.queue, job.task)
        if event.outcome in series.outcomes:
            series.outcomes[event.outcome] += 1
        series.duration.observe(event.duration_seconds)
        self._buffer.touched()

    def _attempt_ended(self, event: AttemptEnded) -> None:
        self._release(event.job.id)
        self._buffer.touched()

    def _other(self, event: Event) -> None:
        if isinstance(event, JobLost):
            LOST.labels(event.job.queue, event.job.task).inc()
        elif isinstance(event, JobsHandedBack):
            for job_id in event.job_ids:
                self._release(job_id)
            self._buffer.touched()
        elif isinstance(event, JobsReclaimed):
            for taken in event.jobs:
                RECLAIMED.labels(taken.queue, taken.task).inc()
                if taken.outcome == "failed":
                    FAILED.labels(taken.queue, taken.task).inc()
        elif isinstance(event, JobsPruned):
            PRUNED.labels(event.queue, event.state).inc(event.jobs)
            if event.batches:
                BATCHES_PRUNED.inc(event.batches)
        elif isinstance(event, LeaderChanged):
            self._stop_stats()
            if event.is_leader and self._dsn is not None:
                sampler = QueueSampler(self._dsn, interval=self._stats_interval)
                self._stats_task = asyncio.get_running_loop().create_task(
                    sampler.run(), name="pgqueue-metrics-stats")
        elif isinstance(event, ServiceError):
            SERVICE_ERRORS.labels(event.service).inc()
        elif isinstance(event, WorkerStarted):
            for service in SERVICES:  # at 0: the first error is an increase
                SERVICE_ERRORS.labels(service)
            for queue, task in event.tasks:  # every job series at 0 from the start
                self._children(queue, task)
            for queue in event.queues:
                for state in FINAL_STATES:
                    PRUNED.labels(queue, state)
            self._slots = event.concurrency
            SLOTS.inc(self._slots)
        elif isinstance(event, WorkerStopped):
            self._buffer.apply()
            self._stop_stats()
            SLOTS.dec(self._slots)
            self._slots = 0
            if self._running:
                BUSY_SLOTS.dec(len(self._running))
                self._running.clear()

    def _release(self, job_id: int) -> None:
        if job_id in self._running:
            self._running.discard(job_id)
            self._buffer.busy -= 1

    def _stop_stats(self) -> None:
        if self._stats_task is not None:
            self._stats_task.cancel()
            self._stats_task = None
            clear_queue_gauges()


# --- the /metrics endpoint ---------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The folder of multiprocess mode's value files, when it is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _AllProcesses(Collector):
    """Sums every process's files; first forgets live gauges of processes that died."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._inner = _multiprocess.MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        for pid in _pids_with_live_gauges(self._path):
            if not _alive(pid):
                _multiprocess.mark_process_dead(pid, self._path)  # type: ignore[no-untyped-call]
        return iter(self._inner.collect())  # type: ignore[no-untyped-call]


def _pids_with_live_gauges(path: str) -> set[int]:
    pids = set()
    for file in Path(path).glob("gauge_live*_*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit():
            pids.add(int(pid))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP server; :meth:`close` stops it."""

    port: int
    _server: Any

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(port: int, addr: str = "0.0.0.0") -> MetricsServer:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread (port 0: any free port).

    In multiprocess mode the endpoint sums the values of every process.
    Raises OSError when the port is taken.
    """
    registry: CollectorRegistry = REGISTRY
    path = multiprocess_dir()
    if path is not None:
        registry = CollectorRegistry()
        registry.register(_AllProcesses(path))
    server, _ = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server.server_port, server)


def serve_or_warn(port: int, addr: str = "0.0.0.0") -> MetricsServer | None:
    """:func:`serve`, but a taken port is logged rather than raised: jobs run anyway."""
    try:
        server = serve(port, addr)
    except OSError as exc:
        logger.error("cannot serve metrics; running without the endpoint",
                     extra={"port": port, "error": str(exc)})
        return None
    logger.info("serving metrics", extra={"port": server.port, "path": "/metrics"})
    return server
