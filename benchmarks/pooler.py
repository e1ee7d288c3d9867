"""What a transaction-mode pooler costs: drain and idle wake-up latency, direct
against through PgBouncer (``pool_mode = transaction``), in the same run.

``python -m benchmarks pooler [--quick | --smoke]``: starts a PgBouncer (Debian's
``pgbouncer``; the launcher of ``tests/system/pgbouncer.py``) in front of the
server, then in fresh databases:

- drain (``pooler_drain_<mode>_c<concurrency>``): N ready async no-op jobs, one
  in-process worker, N over first start to N-th outcome written, as in
  ``benchmarks.drain``; ``direct`` (no pooler) then ``transaction``
  (``pooler="transaction"`` through PgBouncer), at concurrency 10 and 50.
- latency (``pooler_latency_<mode>_p50``...): commit returned → handler start
  with an idle worker, as in ``benchmarks.latency``, for ``direct`` (LISTEN,
  60 s poll), ``listen`` (through PgBouncer, LISTEN on a direct ``listen_dsn``,
  60 s poll) and ``poll`` (through PgBouncer, no LISTEN: the 0.5 s default
  poll). The pause between samples is random (seeded) and the same in every
  mode, so a sample lands anywhere in the poll period.

Ratios (``pooler_*_ratio``) divide the pooled figure by the direct one.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

import pgqueue

from .harness import (
    BenchmarkError,
    Results,
    Sizes,
    WorkerRun,
    insert_ready_jobs,
    scratch_database,
    verify_drained,
)
from .latency import percentile, wake_up_ms

DRAIN_TASK = "bench.pooler_noop"
PROBE_TASK = "bench.pooler_probe"
CONCURRENCIES = (10, 50)
PAUSE_MIN_SECONDS = 0.02
PAUSE_SPREAD_SECONDS = 0.5

_started: dict[int, float] = {}
_arrived = threading.Event()


async def pooler_noop(n: int = 0) -> None:
    return None


async def pooler_probe(n: int) -> None:
    _started[n] = time.perf_counter()
    _arrived.set()


tasks = pgqueue.Registry()
tasks.task(pooler_noop, name=DRAIN_TASK)
tasks.task(pooler_probe, name=PROBE_TASK)


def _drain(dsn: str, n: int, concurrency: int, **options: Any) -> float:
    run = WorkerRun(tasks, dsn, target=n, concurrency=concurrency, **options)
    run.start()
    try:
        run.wait_done(60 + n / 100)
        return run.jobs_per_second()
    finally:
        run.stop()


def _latencies(dsn: str, direct_dsn: str, n: int, pauses: list[float],
               **options: Any) -> list[float]:
    """``n`` wake-up samples: enqueue on ``direct_dsn``, the worker on ``dsn``."""
    _started.clear()
    run = WorkerRun(tasks, dsn, target=n + 1, concurrency=10, **options)
    finished = threading.Semaphore(0)
    run.on_finish = lambda event: finished.release()
    run.start()
    samples: list[float] = []
    try:
        with psycopg.connect(direct_dsn) as conn:
            for i in range(-1, n):  # the first job proves the wake-up path is up
                _arrived.clear()
                pgqueue.enqueue(conn, PROBE_TASK, {"n": i})
                conn.commit()
                committed = time.perf_counter()
                if not _arrived.wait(10 if i >= 0 else 60):
                    raise BenchmarkError(f"job {i} did not start within the timeout")
                if not finished.acquire(timeout=10):
                    raise BenchmarkError(f"job {i} did not finish within 10 s")
                if i >= 0:
                    samples.append(wake_up_ms(committed, _started[i]))
                time.sleep(pauses[i + 1])
    finally:
        run.stop()
    return samples


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    from tests.system.pgbouncer import pgbouncer

    with pgbouncer(server_dsn, pool_mode="transaction") as bouncer:
        _run_drain(server_dsn, bouncer.dsn, sizes.drain, results)
        _run_latency(server_dsn, bouncer.dsn, sizes.latency, results)


def _run_drain(server_dsn: str, pooled: Callable[[str], str], n: int,
               results: Results) -> None:
    for concurrency in CONCURRENCIES:
        figures: dict[str, float] = {}
        for mode in ("direct", "transaction"):
            with scratch_database(server_dsn, f"pooler_{mode}") as dsn:
                insert_ready_jobs(dsn, DRAIN_TASK, n)
                if mode == "direct":
                    figures[mode] = _drain(dsn, n, concurrency)
                else:
                    figures[mode] = _drain(pooled(dsn), n, concurrency, pooler="transaction")
                verify_drained(dsn, n)
            results.add(f"pooler_drain_{mode}_c{concurrency}", figures[mode], "jobs/s",
                        f"{n} async no-op jobs, one worker"
                        + (", through PgBouncer (transaction)" if mode != "direct" else ""))
        results.add(f"pooler_drain_ratio_c{concurrency}",
                    figures["transaction"] / figures["direct"], "x", "transaction / direct")


def _run_latency(server_dsn: str, pooled: Callable[[str], str], n: int,
                 results: Results) -> None:
    rng = random.Random(16)
    pauses = [PAUSE_MIN_SECONDS + rng.random() * PAUSE_SPREAD_SECONDS for _ in range(n + 1)]
    p50: dict[str, float] = {}
    for mode in ("direct", "listen", "poll"):
        with scratch_database(server_dsn, f"pooler_{mode}") as dsn:
            by_mode: dict[str, dict[str, Any]] = {
                "direct": {"poll_interval": 60.0},
                "listen": {"poll_interval": 60.0, "pooler": "transaction", "listen_dsn": dsn},
                "poll": {"poll_interval": None, "pooler": "transaction"},
            }
            options = by_mode[mode]
            samples = _latencies(dsn if mode == "direct" else pooled(dsn), dsn, n, pauses,
                                 **options)
            verify_drained(dsn, n + 1)
        note = {"direct": "LISTEN, direct", "listen": "PgBouncer, LISTEN on --listen-dsn",
                "poll": "PgBouncer, no LISTEN, 0.5 s poll"}[mode]
        for label, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            value = percentile(samples, share)
            if label == "p50":
                p50[mode] = value
            results.add(f"pooler_latency_{mode}_{label}", value, "ms", f"{n} samples, {note}")
        results.add(f"pooler_latency_{mode}_mean", statistics.fmean(samples), "ms", note)
    for mode in ("listen", "poll"):
        results.add(f"pooler_latency_{mode}_p50_ratio", p50[mode] / max(p50["direct"], 1e-3),
                    "x", f"{mode} / direct, p50")
