"""The documented overshoot bound of max_depth, under a race.

Producers (threads of this process and separate processes) each run many
transactions of K jobs into one bounded queue while a worker drains it; a sampler
reads the committed depth every few ms. The README's bound: a check sees what
committed before it plus its own transaction's jobs, so the depth can pass
max_depth by at most the jobs the other producers' open transactions hold, here
(producers - 1) * K. Every producer also commits after a refusal, which proves its
transaction stayed usable.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import threading
from typing import Any

import psycopg

import pgqueue
from tests.support import running_worker, scalar, wait_until

Q = "raced"
MAX_DEPTH = 30
K = 3  # jobs per producer transaction
TRANSACTIONS = 60  # per producer
THREADS = 5
PROCESSES = 3


def produce(dsn: str, seed: int) -> tuple[int, int]:
    """Run TRANSACTIONS transactions of K jobs (one enqueue_many, or K single enqueues,
    alternately); return (jobs committed, refusals)."""
    rng = random.Random(seed)
    committed = refused = 0
    with psycopg.connect(dsn) as conn:
        for n in range(TRANSACTIONS):
            inserted = 0
            try:
                if n % 2:
                    inserted = len(pgqueue.enqueue_many(conn, [{"task": "race", "queue": Q}] * K))
                else:
                    for _ in range(K):
                        pgqueue.enqueue(conn, "race", queue=Q)
                        inserted += 1
            except pgqueue.QueueFullError:
                refused += 1
            conn.execute("SELECT pg_sleep(%s)", [rng.random() * 0.004])  # hold it open a moment
            conn.commit()  # what was inserted before a refusal commits: the tx is usable
            committed += inserted
    return committed, refused


def _produce_in_child(dsn: str, seed: int, out: Any) -> None:
    out.put(produce(dsn, seed))


def test_concurrent_producers_pass_max_depth_by_at_most_the_documented_bound(
        clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        pgqueue.set_max_depth(conn, Q, MAX_DEPTH)
    registry = pgqueue.Registry()

    @registry.task(name="race", queue=Q)
    async def race() -> None:
        await asyncio.sleep(0.003)

    peak, stop = [0], threading.Event()

    def sample() -> None:
        with psycopg.connect(clean_db, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute("SELECT count(*) FROM pgqueue.jobs WHERE queue = %s",
                                   [Q]).fetchone()
                peak[0] = max(peak[0], int(row[0]) if row else 0)
                stop.wait(0.002)

    results: list[tuple[int, int]] = []
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    sampler = threading.Thread(target=sample, daemon=True)
    with running_worker(clean_db, registry, queues=[Q], concurrency=4):
        sampler.start()
        children = [ctx.Process(target=_produce_in_child, args=(clean_db, 100 + i, out))
                    for i in range(PROCESSES)]
        for child in children:
            child.start()
        threads = [threading.Thread(target=lambda i=i: results.append(produce(clean_db, i)))
                   for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        results.extend(out.get(timeout=300) for _ in children)
        for child in children:
            child.join(60)
            assert child.exitcode == 0
        committed = sum(c for c, _ in results)
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs "
                                  "WHERE queue = %s", [Q]) == committed,
                   timeout=120, message="the worker drains every committed job")
        stop.set()
        sampler.join(10)
    producers = THREADS + PROCESSES
    bound = MAX_DEPTH + (producers - 1) * K
    assert len(results) == producers
    assert sum(r for _, r in results) > 0, "the race never reached the limit"
    assert peak[0] <= bound, (peak[0], bound)
    assert peak[0] >= MAX_DEPTH - K, peak[0]  # the queue really was at its limit
