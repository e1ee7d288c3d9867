"""Prometheus metrics of a real in-process worker, scraped over HTTP.

Metrics live in the process-wide default registry, so every test uses queues of
its own and compares values under those labels.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
import uuid
from typing import Any

import psycopg
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import pgqueue
from pgqueue.observability import metrics, queue_metrics
from tests.support import fetch, running_worker, wait_until

FAST_RETRY = pgqueue.RetryPolicy(base_seconds=0.01, max_seconds=0.05, jitter=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the endpoint, keyed by (sample name, labels)."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def unique_queue() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def test_scraped_values_after_jobs_ran(clean_db: str) -> None:
    queue = unique_queue()
    tasks = pgqueue.Registry()

    @tasks.task(name="m.ok", queue=queue)
    def ok() -> None:
        return None

    @tasks.task(name="m.flaky", queue=queue, retry=FAST_RETRY)
    def flaky(ctx: pgqueue.JobContext) -> None:
        if ctx.attempt == 1:
            raise ValueError("first attempt fails")

    @tasks.task(name="m.broken", queue=queue)
    def broken() -> None:
        raise pgqueue.PermanentError("never works")

    began = time.monotonic()
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "m.ok", "queue": queue}] * 3)
        pgqueue.enqueue(conn, "m.flaky", queue=queue)
        pgqueue.enqueue(conn, "m.broken", queue=queue)
        # Due in an hour: stays `scheduled`, so the leader's first stats read is exact.
        pgqueue.enqueue_many(conn, [{"task": "m.ok", "queue": queue, "delay": 3600}] * 2)
    port = free_port()
    with running_worker(clean_db, tasks, metrics_port=port, concurrency=4) as w:
        wait_until(lambda: len(w.finished()) == 6, timeout=60, message="six attempts written")
        samples = wait_until(lambda: (s := scrape(port)) and value(
            s, "pgqueue_queue_jobs", queue=queue, state="scheduled") == 2 and s,
            timeout=60, message="the leader's queue gauges")
        waited = time.monotonic() - began
        assert value(samples, "pgqueue_worker_slots") == 4
        assert value(samples, "pgqueue_worker_busy_slots") == 0

    def count(name: str, task: str) -> float | None:
        return value(samples, name, queue=queue, task=task)

    assert count("pgqueue_jobs_enqueued_total", "m.ok") == 5
    assert count("pgqueue_jobs_enqueued_total", "m.flaky") == 1
    assert count("pgqueue_jobs_started_total", "m.ok") == 3
    assert count("pgqueue_jobs_started_total", "m.flaky") == 2
    assert count("pgqueue_jobs_succeeded_total", "m.ok") == 3
    assert count("pgqueue_jobs_succeeded_total", "m.flaky") == 1
    assert count("pgqueue_jobs_retried_total", "m.flaky") == 1
    assert count("pgqueue_jobs_failed_total", "m.broken") == 1
    # Every outcome of a worker's task has a series from the worker's start, at 0.
    assert count("pgqueue_jobs_failed_total", "m.ok") == 0
    assert count("pgqueue_job_duration_seconds_count", "m.flaky") == 2
    assert count("pgqueue_job_queue_wait_seconds_count", "m.ok") == 3
    wait_sum = count("pgqueue_job_queue_wait_seconds_sum", "m.ok")
    # Seconds, each job's at most the time since they were enqueued.
    assert wait_sum is not None and 0 <= wait_sum <= 3 * waited
    assert value(samples, "pgqueue_queue_lag_seconds", queue=queue) is not None
    # The worker's endpoint closes with it.
    try:
        scrape(port)
    except OSError:
        pass
    else:
        raise AssertionError("the metrics endpoint outlived its worker")


def test_reclaimed_jobs_are_counted(clean_db: str) -> None:
    queue = unique_queue()
    tasks = pgqueue.Registry()

    @tasks.task(name="m.once", queue=queue)
    def once() -> None:
        return None

    with psycopg.connect(clean_db) as conn:
        job = pgqueue.enqueue(conn, "m.once", queue=queue)
        # As if a worker that died had claimed it an hour ago.
        conn.execute("UPDATE pgqueue.jobs SET state = 'running', attempt = 1, "
                     "started_at = now() - interval '1 hour', worker_id = gen_random_uuid(), "
                     "heartbeat_at = now() - interval '1 hour' WHERE id = %s", [job])
    port = free_port()
    with running_worker(clean_db, tasks, metrics_port=port) as w:
        wait_until(lambda: w.finished("succeeded"), timeout=60,
                   message="the reclaimed job ran")
        samples = scrape(port)
    assert value(samples, "pgqueue_jobs_reclaimed_total", queue=queue, task="m.once") == 1
    assert value(samples, "pgqueue_jobs_succeeded_total", queue=queue, task="m.once") == 1
    assert fetch(clean_db, "SELECT state::text, attempt FROM pgqueue.all_jobs") == [
        ("succeeded", 2)]


def test_queue_gauges_follow_queue_stats(clean_db: str) -> None:
    queue = unique_queue()
    since_update = time.monotonic()
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "nobody.runs", "queue": queue}] * 3)
        conn.execute("UPDATE pgqueue.jobs SET run_at = now() - interval '90 seconds'")
    metrics.apply_queue_stats(asyncio.run(metrics.read_queue_stats(clean_db)))
    port = free_port()
    read_after = time.monotonic() - since_update
    server = metrics.serve(port, "127.0.0.1")
    try:
        samples = scrape(port)
        with psycopg.connect(clean_db, autocommit=True) as conn:
            conn.execute("DELETE FROM pgqueue.jobs")
            conn.execute("DELETE FROM pgqueue.queues")
        metrics.apply_queue_stats(asyncio.run(metrics.read_queue_stats(clean_db)))
        after = scrape(port)
    finally:
        server.close()
    assert value(samples, "pgqueue_queue_jobs", queue=queue, state="ready") == 3
    assert value(samples, "pgqueue_queue_unclaimable_jobs", queue=queue) == 3
    lag = value(samples, "pgqueue_queue_lag_seconds", queue=queue)
    # 90 s old at the update, plus however long the update and the read took.
    assert lag is not None and 89.9 < lag < 90 + read_after + 1
    # A queue that is gone loses its series.
    assert value(after, "pgqueue_queue_jobs", queue=queue, state="ready") is None


def test_a_taken_port_does_not_stop_the_worker(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="m.ok", queue="mport")
    def ok() -> None:
        return None

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with running_worker(clean_db, tasks, metrics_port=port) as w:
            assert w.worker.metrics_server is None
            with psycopg.connect(clean_db) as conn:
                pgqueue.enqueue(conn, "m.ok", queue="mport")
            wait_until(lambda: w.finished("succeeded"), timeout=60)


def test_the_leader_counts_committed_jobs_per_queue(clean_db: str) -> None:
    """pgqueue_queue_enqueued_total: every committed job once, live or finished,
    one sample late; a rolled-back insert counts nothing."""
    first, second = unique_queue(), unique_queue()
    sampler = queue_metrics.QueueSampler(clean_db, interval=1.0)

    def counter(queue: str) -> float:
        return REGISTRY.get_sample_value("pgqueue_queue_enqueued_total",
                                         {"queue": queue}) or 0.0

    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "m.before", "queue": first}] * 4)
    assert asyncio.run(sampler.sample_once()) == {}  # a term counts from its start on
    assert counter(first) == 0
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "m.a", "queue": first}] * 3)
        cancelled = pgqueue.enqueue(conn, "m.b", queue=second)
        pgqueue.enqueue(conn, "m.b", queue=second, delay=3600)
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue(conn, "m.rolled_back", queue=second)
        conn.rollback()
    with psycopg.connect(clean_db) as conn:
        pgqueue.cancel(conn, cancelled)  # now in history: still counted, once
    # The ids taken before this sample are counted at the next one.
    assert asyncio.run(sampler.sample_once()) == {}
    assert asyncio.run(sampler.sample_once()) == {first: 3, second: 2}
    assert (counter(first), counter(second)) == (3, 2)
    assert asyncio.run(sampler.sample_once()) == {}
    assert (counter(first), counter(second)) == (3, 2)
