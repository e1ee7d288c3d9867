"""Bloat: the live table after many jobs have passed through it.

A worker (concurrency 50) drains while a producer keeps about 20,000 jobs queued,
enqueueing them with ``enqueue_many`` in chunks of 10,000, until ``bloat`` jobs
have gone through one queue: the steady flow of a busy queue. Reported, for
``pgqueue.jobs`` and its indexes: the size when empty, right after the run, and
after a plain ``VACUUM`` (what autovacuum does; it gives dead space back for
reuse and cuts empty pages off the end of the table, it does not rewrite), plus
the dead tuples left each time. Every job is checked to have succeeded.
"""

from __future__ import annotations

import threading

import psycopg

import pgqueue

from .drain import KINDS, tasks
from .harness import Results, Sizes, WorkerRun, scratch_database, verify_drained

CONCURRENCY = 50
CHUNK = 10_000
KEEP_QUEUED = 20_000


def live_sizes(dsn: str) -> tuple[int, int, int]:
    """(table bytes, index bytes, dead tuples) of pgqueue.jobs."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT pg_table_size('pgqueue.jobs'), pg_indexes_size('pgqueue.jobs'), "
            "(SELECT n_dead_tup FROM pg_stat_user_tables "
            " WHERE relid = 'pgqueue.jobs'::regclass)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2] or 0)


def produce(dsn: str, total: int, stop: threading.Event) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        sent = 0
        while sent < total and not stop.is_set():
            row = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
            if row and row[0] > KEEP_QUEUED:
                stop.wait(0.05)
                continue
            n = min(CHUNK, total - sent)
            with conn.transaction():
                pgqueue.enqueue_many(conn, [{"task": KINDS["async"]}] * n)
            sent += n


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    total = sizes.bloat
    with scratch_database(server_dsn, "bloat") as dsn:
        empty_table, empty_index, _ = live_sizes(dsn)
        stop = threading.Event()
        producer = threading.Thread(target=produce, args=(dsn, total, stop), daemon=True)
        worker = WorkerRun(tasks, dsn, target=total, concurrency=CONCURRENCY)
        worker.start()
        producer.start()
        try:
            worker.wait_done(120.0 + total / 200)
        finally:
            stop.set()
            producer.join(60)
            worker.stop()
        verify_drained(dsn, total)
        after_table, after_index, after_dead = live_sizes(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM pgqueue.jobs")
        vac_table, vac_index, vac_dead = live_sizes(dsn)
    note = f"{total:,} jobs through one queue"
    kib = 1024
    results.add("bloat_table_empty", empty_table / kib, "KiB", "pgqueue.jobs heap, empty")
    results.add("bloat_table_after", after_table / kib, "KiB", note)
    results.add("bloat_table_vacuumed", vac_table / kib, "KiB", "after a plain VACUUM")
    results.add("bloat_indexes_empty", empty_index / kib, "KiB", "all indexes of pgqueue.jobs")
    results.add("bloat_indexes_after", after_index / kib, "KiB", note)
    results.add("bloat_indexes_vacuumed", vac_index / kib, "KiB",
                "after VACUUM (space reusable; btrees do not shrink)")
    results.add("bloat_dead_tuples_after", after_dead, "tuples", note)
    results.add("bloat_dead_tuples_vacuumed", vac_dead, "tuples", "after a plain VACUUM")
