"""Idle wake-up latency: enqueue-commit returned → handler started.

One worker runs on a thread of this process with a 60 s poll interval, so only
the NOTIFY delivered at commit can wake it. The producer (this thread) enqueues
one job, commits, and reads ``time.perf_counter()`` when ``commit()`` returns;
the handler reads the same clock when it starts. The next job is enqueued only
after the previous outcome was written and a short pause, so the worker is idle
(asleep on LISTEN) every time.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

import psycopg

import pgqueue

from .harness import BenchmarkError, Results, Sizes, WorkerRun, scratch_database, verify_drained

TASK = "bench.latency_probe"
PAUSE_SECONDS = 0.02

_started: dict[int, float] = {}
_arrived = threading.Event()


async def latency_probe(n: int) -> None:
    _started[n] = time.perf_counter()
    _arrived.set()


tasks = pgqueue.Registry()
tasks.task(latency_probe, name=TASK)


def wake_up_ms(committed: float, started: float) -> float:
    """Milliseconds from the producer seeing its commit return to the handler's start.

    The worker can start the handler before the producer's commit call has
    returned (the notification is sent at commit, and the return travels back
    while the worker claims): that job waited for nothing, so it counts as 0,
    not as a negative latency. The peers' samples are taken the same way.
    """
    return max(0.0, (started - committed) * 1000)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def wake_up_samples(server_dsn: str, n: int, *,
                    worker_dsn: Callable[[str], str] | None = None,
                    producer_dsn: Callable[[str], str] | None = None) -> list[float]:
    """``n`` wake-up samples in ms, on a scratch database of ``server_dsn``.

    ``worker_dsn`` and ``producer_dsn`` map the scratch database's DSN to the
    one the worker and the producer connect with (through a proxy, say); by
    default both connect directly.
    """
    _started.clear()
    with scratch_database(server_dsn, "latency") as dsn:
        run = WorkerRun(tasks, dsn if worker_dsn is None else worker_dsn(dsn), target=n + 1,
                        concurrency=10, poll_interval=60.0)
        finished = threading.Semaphore(0)
        run.on_finish = lambda event: finished.release()
        run.start()
        latencies: list[float] = []
        try:
            # The listener's LISTEN may land just after WorkerStarted: wait for a
            # first job to go through before measuring.
            with psycopg.connect(dsn if producer_dsn is None else producer_dsn(dsn)) as conn:
                for i in range(-1, n):
                    _arrived.clear()
                    pgqueue.enqueue(conn, TASK, {"n": i})
                    conn.commit()
                    committed = time.perf_counter()
                    if not _arrived.wait(10 if i >= 0 else 60):
                        raise BenchmarkError(f"job {i} did not start within the timeout")
                    if not finished.acquire(timeout=10):
                        raise BenchmarkError(f"job {i} did not finish within 10 s")
                    if i >= 0:
                        latencies.append(wake_up_ms(committed, _started[i]))
                    time.sleep(PAUSE_SECONDS)
        finally:
            run.stop()
        verify_drained(dsn, n + 1)
    return latencies


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    n = sizes.latency
    latencies = wake_up_samples(server_dsn, n)
    for label, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        results.add(f"latency_{label}", percentile(latencies, share), "ms",
                    f"{n} jobs, commit returned -> handler start, idle worker")
    results.add("latency_mean", statistics.fmean(latencies), "ms", "")
