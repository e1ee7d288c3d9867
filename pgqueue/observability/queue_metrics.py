"""Queue metrics the leader reads from the database, for every queue.

While its worker leads, :class:`QueueSampler` reads every ``interval`` seconds
(one short connection per read):

- ``pgqueue.queue_stats`` into the queue gauges (depth by state, lag,
  unclaimable jobs);
- the jobs each queue gained since the last read into
  ``pgqueue_queue_enqueued_total``: committed jobs from every producer (Python,
  the SQL function, triggers, other languages), with nothing to set up in the
  application.

Invariants:
- only the leader sets these; a worker that stops leading forgets its queue
  gauges (the next leader sets them), while its counter keeps the value it
  reached, so that a later term continues it;
- the enqueue counter counts each committed job once, by id: a sample counts
  the ids up to the sequence value read one sample earlier, so a job is counted
  when its transaction committed within one interval of taking its id (a job
  committed later is not counted); the first sample of a term counts nothing;
- every queue of ``pgqueue.queue_stats`` has an enqueue series from its first
  read on (0 until jobs arrive), so sums over queues never lack a series.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from prometheus_client import Counter, Gauge
from psycopg.rows import dict_row

from .._sql import query

__all__ = ["DEFAULT_STATS_INTERVAL_SECONDS", "QUEUE_STATES", "QueueSampler",
           "apply_queue_stats", "clear_queue_gauges", "read_queue_stats",
           "stats_interval_from_env"]

logger = logging.getLogger("pgqueue.metrics")

DEFAULT_STATS_INTERVAL_SECONDS = 15.0
#: Overrides the default read interval of the leader's queue metrics (seconds).
STATS_INTERVAL_ENV = "PGQUEUE_METRICS_STATS_INTERVAL"
QUEUE_STATES = ("ready", "scheduled", "running", "failed")

QUEUE_JOBS = Gauge("pgqueue_queue_jobs", "Jobs by queue and state (ready, scheduled, "
                   "running, failed in history), read by the leader from "
                   "pgqueue.queue_stats.", ("queue", "state"),
                   multiprocess_mode="livemostrecent")
QUEUE_LAG = Gauge("pgqueue_queue_lag_seconds", "Age of the oldest ready job (0 when none), "
                  "unclaimable jobs included, read by the leader from pgqueue.queue_stats.",
                  ("queue",), multiprocess_mode="livemostrecent")
QUEUE_UNCLAIMABLE = Gauge("pgqueue_queue_unclaimable_jobs", "Ready jobs no live worker can "
                          "run (unknown task or queue), from pgqueue.queue_stats.",
                          ("queue",), multiprocess_mode="livemostrecent")
QUEUE_DEPTH = Gauge("pgqueue_queue_depth", "Live jobs of the queue (queued, scheduled, "
                    "blocked, running), what max_depth bounds; from pgqueue.queue_stats.",
                    ("queue",), multiprocess_mode="livemostrecent")
QUEUE_MAX_DEPTH = Gauge("pgqueue_queue_max_depth", "The queue's max_depth, if it has one.",
                        ("queue",), multiprocess_mode="livemostrecent")
QUEUE_WARN_DEPTH = Gauge("pgqueue_queue_warn_depth", "The queue's warn_depth (soft bound), if "
                         "it has one.", ("queue",), multiprocess_mode="livemostrecent")
QUEUE_ENQUEUED = Counter("pgqueue_queue_enqueued", "Jobs committed to each queue by any "
                         "producer, counted by the leader from the database (one sample "
                         "interval late).", ("queue",))


def stats_interval_from_env() -> float:
    """``$PGQUEUE_METRICS_STATS_INTERVAL`` in seconds, else the default (15)."""
    raw = os.environ.get(STATS_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_STATS_INTERVAL_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{STATS_INTERVAL_ENV} must be a number of seconds, "
                         f"got {raw!r}") from None
    if not seconds > 0:
        raise ValueError(f"{STATS_INTERVAL_ENV} must be > 0 seconds, got {raw!r}")
    return seconds


async def read_queue_stats(dsn: str) -> list[dict[str, Any]]:
    """Rows of ``pgqueue.queue_stats`` as dicts, on a short-lived connection."""
    async with await _connect(dsn) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query("queue_stats_list"))
        return await cur.fetchall()


async def _connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=5, application_name="pgqueue-metrics")


_seen_queues: set[str] = set()


def apply_queue_stats(rows: Iterable[Mapping[str, Any]]) -> None:
    """Set the queue gauges from ``pgqueue.queue_stats`` rows; drop vanished queues."""
    queues = set()
    for row in rows:
        queue = str(row["queue"])
        queues.add(queue)
        for state in QUEUE_STATES:
            QUEUE_JOBS.labels(queue, state).set(float(row.get(state) or 0))
        QUEUE_LAG.labels(queue).set(float(row.get("lag_seconds") or 0))
        QUEUE_UNCLAIMABLE.labels(queue).set(float(row.get("unclaimable") or 0))
        QUEUE_DEPTH.labels(queue).set(float(row.get("depth") or 0))
        _set_or_drop(QUEUE_MAX_DEPTH, queue, row.get("max_depth"))
        _set_or_drop(QUEUE_WARN_DEPTH, queue, row.get("warn_depth"))
        QUEUE_ENQUEUED.labels(queue)  # the series exists, at 0, before its first job
    for queue in _seen_queues - queues:
        for state in QUEUE_STATES:
            _remove(QUEUE_JOBS, queue, state)
        for gauge in (QUEUE_LAG, QUEUE_UNCLAIMABLE, QUEUE_DEPTH, QUEUE_MAX_DEPTH,
                      QUEUE_WARN_DEPTH):
            _remove(gauge, queue)
    _seen_queues.clear()
    _seen_queues.update(queues)


def _set_or_drop(gauge: Gauge, queue: str, value: Any) -> None:
    """Set a threshold gauge, or remove its series when the queue has none."""
    gauge.labels(queue).set(float(value)) if value is not None else _remove(gauge, queue)


def _remove(gauge: Gauge, *labels: str) -> None:
    """Drop a series if it is there (prometheus-client 0.20, the minimum, raises
    KeyError for one that is not)."""
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


def clear_queue_gauges() -> None:
    """Forget the queue gauges (this worker no longer leads; the new leader sets them)."""
    for gauge in (QUEUE_JOBS, QUEUE_LAG, QUEUE_UNCLAIMABLE, QUEUE_DEPTH, QUEUE_MAX_DEPTH,
                  QUEUE_WARN_DEPTH):
        gauge.clear()
    _seen_queues.clear()


class QueueSampler:
    """The leader's reads of queue metrics, one term of leadership at a time.

    ``run()`` reads until cancelled; :meth:`sample_once` is one read (tests
    call it directly). Example::

        sampler = QueueSampler(dsn, interval=15.0)
        task = asyncio.create_task(sampler.run())  # while leading; cancel on losing it
    """

    def __init__(self, dsn: str, *, interval: float = DEFAULT_STATS_INTERVAL_SECONDS
                 ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self._dsn = dsn
        self.interval = interval
        # Ids in (counted, pending] are counted at the next sample.
        self._counted: int | None = None
        self._pending: int | None = None

    async def sample_once(self) -> dict[str, int]:
        """Read both sources and update the metrics; returns the jobs counted per queue."""
        async with await _connect(self._dsn) as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(query("queue_stats_list"))
            apply_queue_stats(await cur.fetchall())
            after, upto = self._counted or 0, self._pending or 0
            await cur.execute(query("job_created_counts"), {"after": after, "upto": upto})
            row = await cur.fetchone()
        assert row is not None
        last_id = int(row["last_id"] or 0)
        counted: dict[str, int] = {}
        if self._pending is not None:
            counted = {str(q): int(n) for q, n in (row["created"] or {}).items()}
            for queue, jobs in counted.items():
                QUEUE_ENQUEUED.labels(queue).inc(jobs)
            self._counted = upto
        else:
            self._counted = last_id  # a new term counts from here on
        self._pending = max(last_id, self._counted)
        return counted

    async def run(self) -> None:
        failing = False
        while True:
            try:
                await self.sample_once()
                failing = False
            except Exception as exc:
                if not failing:  # once per outage, not every interval
                    failing = True
                    logger.warning("cannot read queue metrics from the database",
                                   extra={"error": str(exc).strip()})
            await asyncio.sleep(self.interval)
