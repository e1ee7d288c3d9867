"""Producer figures: bulk enqueue, and single enqueues against a plain INSERT.

- ``enqueue_bulk``: :func:`pgqueue.enqueue_many` of N jobs in one transaction,
  commit included.
- ``enqueue_single_*``: N calls of :func:`pgqueue.enqueue` in one transaction
  against N plain ``INSERT INTO pgqueue.jobs (task, args, queue)`` of the same
  row, on the same connection, alternated over a few rounds; the best round of
  each counts (the least disturbed by the rest of the machine).
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg

import pgqueue

from .harness import BenchmarkError, Results, Sizes, count_live, scratch_database

TASK = "bench.noop_async"
PLAIN_INSERT = "INSERT INTO pgqueue.jobs (task, args, queue) VALUES (%s, %s::jsonb, %s)"
ROUNDS = 3


def bench_bulk(server_dsn: str, sizes: Sizes, results: Results) -> None:
    n = sizes.bulk_enqueue
    with scratch_database(server_dsn, "bulk") as dsn:
        specs: list[pgqueue.JobSpec] = [{"task": TASK, "args": {"n": i}} for i in range(n)]
        with psycopg.connect(dsn) as conn:
            started = time.perf_counter()
            ids = pgqueue.enqueue_many(conn, specs)
            conn.commit()
            elapsed = time.perf_counter() - started
        if len(set(ids)) != n or count_live(dsn) != n:
            raise BenchmarkError(f"bulk enqueue of {n} jobs stored {count_live(dsn)}")
        results.add("enqueue_bulk", n / elapsed, "jobs/s", f"enqueue_many, {n:,} jobs, 1 tx")


def _time_pgqueue(conn: psycopg.Connection[Any], n: int, offset: int) -> float:
    started = time.perf_counter()
    with conn.transaction():
        for i in range(n):
            pgqueue.enqueue(conn, TASK, {"n": offset + i}, queue="default")
    return time.perf_counter() - started


def _time_plain(conn: psycopg.Connection[Any], n: int, offset: int) -> float:
    started = time.perf_counter()
    with conn.transaction():
        for i in range(n):
            conn.execute(PLAIN_INSERT, (TASK, json.dumps({"n": offset + i}), "default"))
    return time.perf_counter() - started


def bench_single(server_dsn: str, sizes: Sizes, results: Results) -> None:
    n = sizes.single_enqueue
    with scratch_database(server_dsn, "single") as dsn, \
            psycopg.connect(dsn, autocommit=True) as conn:
        # Warm both paths up (prepared statements, plpgsql plan cache) first.
        _time_pgqueue(conn, 50, 0)
        _time_plain(conn, 50, 0)
        ours, plain = [], []
        for r in range(ROUNDS):
            ours.append(_time_pgqueue(conn, n, (2 * r + 1) * n))
            plain.append(_time_plain(conn, n, (2 * r + 2) * n))
        expected = 100 + 2 * ROUNDS * n
        if count_live(dsn) != expected:
            raise BenchmarkError(f"expected {expected} jobs, found {count_live(dsn)}")
    ours_us = min(ours) / n * 1e6
    plain_us = min(plain) / n * 1e6
    results.add("enqueue_single_pgqueue", ours_us, "us/call", f"{n:,} enqueue() in 1 tx")
    results.add("enqueue_single_plain_insert", plain_us, "us/call", f"{n:,} INSERT in 1 tx")
    results.add("enqueue_single_ratio", ours_us / plain_us, "x", "pgqueue / plain INSERT")


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    bench_bulk(server_dsn, sizes, results)
    bench_single(server_dsn, sizes, results)
