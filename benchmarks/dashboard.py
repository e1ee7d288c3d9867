"""Dashboard page times on a large database, with the plans of its queries.

    python -m benchmarks.dashboard --dsn postgresql://postgres@127.0.0.1:5432/postgres
    python -m benchmarks.dashboard --quick      # 100,000 live, 1,000,000 in history
    python -m benchmarks.dashboard --database NAME   # fill NAME once, keep it, reuse it

Creates its own database (or uses ``--database``, filled if its history is empty
and kept afterwards), fills ``pgqueue.jobs`` (default 1,000,000 live jobs:
ready, scheduled, retrying, a few running) and ``pgqueue.finished_jobs``
(default 10,000,000 over 7 days, 8 % failed) with every index in place,
server-side (INSERT ... SELECT FROM generate_series). Then it does what a
leading worker would have done: rolls history up (timed, as the leader's
roll-up service runs it), takes a sample of every queue (timed), and writes
a week of samples every 10 s as the sampler would have. Then it renders each
page through the dashboard's own handler (no socket) and prints the median of
5 renders, again without a fresh sample (no worker running: the pages count
themselves, bounded), and EXPLAIN (ANALYZE, BUFFERS) of the queries behind them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

import pgqueue
from benchmarks.history import scratch_database
from pgqueue._sql import query
from pgqueue.dashboard import Dashboard
from pgqueue.dashboard.app import configure_connection
from pgqueue.dashboard.http import Request
from pgqueue.worker.maintenance.rollup import Rollup
from pgqueue.worker.session import Session

QUEUES = ("default", "email", "reports", "webhooks")
WORKER = "00000000-0000-0000-0000-000000000001"
CHUNK = 1_000_000

FILL_HISTORY = """
INSERT INTO pgqueue.finished_jobs
    (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
     started_at, finished_at, worker_id, last_error, errors, unique_key)
SELECT g, (ARRAY['default', 'email', 'reports', 'webhooks'])[1 + g %% 4],
       'bench.task_' || g %% 3, jsonb_build_object('order_id', g), 0,
       (CASE WHEN g %% 50 = 0 THEN 'cancelled' WHEN g %% 25 IN (1, 2) THEN 'failed'
             ELSE 'succeeded' END)::pgqueue.job_state,
       1, 5, f - interval '3 seconds', f - interval '3 seconds',
       f - (g %% 1000) * interval '1 millisecond', f, %(worker)s::uuid,
       CASE WHEN g %% 25 IN (1, 2) THEN 'TimeoutError: upstream ' || g %% 97 END, '[]',
       CASE WHEN g %% 10 = 0 THEN 'key-' || g END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g,
     LATERAL (SELECT now() - (%(total)s - g) * (interval '7 days' / %(total)s)) t(f)
"""
FILL_LIVE = """
INSERT INTO pgqueue.jobs (id, queue, task, args, attempt, run_at, created_at, unique_key)
SELECT g, (ARRAY['default', 'email', 'reports', 'webhooks'])[1 + g %% 4],
       'bench.task_' || g %% 3, jsonb_build_object('order_id', g),
       CASE WHEN g %% 100 = 0 THEN 1 ELSE 0 END,
       CASE WHEN g %% 50 IN (0, 1) THEN now() + interval '1 hour' ELSE now() END,
       now() - interval '1 minute', CASE WHEN g %% 10 = 0 THEN 'live-' || g END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g
"""


def fill(conn: psycopg.Connection[Any], live: int, history: int) -> None:
    conn.execute("INSERT INTO pgqueue.workers (id, host, pid, queues, tasks, concurrency) "
                 "VALUES (%s, 'bench', 1, %s, %s, 20)",
                 [WORKER, list(QUEUES), ["bench.task_0", "bench.task_1"]])
    for q in QUEUES:
        pgqueue.enqueue(conn, "bench.task_0", queue=q)  # creates the queue rows
    conn.execute("DELETE FROM pgqueue.jobs")
    started = time.perf_counter()
    for first in range(1, history + 1, CHUNK):
        conn.execute(FILL_HISTORY, {"first": first, "last": min(history, first + CHUNK - 1),
                                    "total": history, "worker": WORKER})
    offset = history + 1
    for first in range(offset, offset + live, CHUNK):
        conn.execute(FILL_LIVE, {"first": first, "last": min(offset + live - 1,
                                                             first + CHUNK - 1)})
    conn.execute("UPDATE pgqueue.jobs SET state = 'running', worker_id = %s, "
                 "started_at = now(), heartbeat_at = now() "
                 "WHERE id IN (SELECT id FROM pgqueue.jobs ORDER BY id LIMIT 20)", [WORKER])
    conn.execute("SELECT setval('pgqueue.jobs_id_seq', %s)", [offset + live])
    conn.execute("SELECT pgqueue.compact_failed_counts()")
    for table in ("finished_jobs", "jobs", "queues", "workers", "failed_counts"):
        conn.execute(f"VACUUM ANALYZE pgqueue.{table}")
    print(f"filled {live:,} live and {history:,} finished jobs in "
          f"{time.perf_counter() - started:.0f} s")


SAMPLES = """
INSERT INTO pgqueue.queue_samples
    (sampled_at, queue, ready, scheduled, running, blocked, unclaimable, lag_seconds)
SELECT t, s.queue, s.ready, s.scheduled, s.running, s.blocked, s.unclaimable,
       (extract(epoch FROM t) % 600)::numeric
FROM generate_series(now() - interval '7 days', now() - interval '1 minute',
                     interval '10 seconds') t,
     pgqueue.queue_samples s
WHERE s.sampled_at = (SELECT max(sampled_at) FROM pgqueue.queue_samples)
ON CONFLICT DO NOTHING
"""
SAMPLE_ROLLUPS = """
INSERT INTO pgqueue.queue_sample_rollups
    (width_seconds, bucket, queue, samples, ready_sum, depth_sum, lag_max)
SELECT w.width, to_timestamp(floor(extract(epoch FROM s.sampled_at) / w.width) * w.width),
       s.queue, count(*), sum(s.ready), sum(s.ready + s.scheduled + s.running + s.blocked),
       max(s.lag_seconds)
FROM pgqueue.queue_samples s CROSS JOIN (VALUES (600), (3600)) w(width)
GROUP BY 1, 2, 3
ON CONFLICT (width_seconds, bucket, queue) DO UPDATE
SET samples = EXCLUDED.samples, ready_sum = EXCLUDED.ready_sum,
    depth_sum = EXCLUDED.depth_sum, lag_max = EXCLUDED.lag_max
"""


def lead(dsn: str) -> None:
    """What a leading worker would have done: roll history up, sample the queues,
    and a week of samples every 10 s (made up from the one taken)."""
    async def roll_up() -> tuple[int, int]:
        session = Session(dsn, name="bench-rollup")
        try:
            rollup, jobs, statements = Rollup(session), 0, 0
            while True:
                result = await rollup.run_once()
                jobs, statements = jobs + result.jobs, statements + result.statements
                if result.statements < rollup.config.max_statements:
                    return jobs, statements
        finally:
            await session.close()

    started = time.perf_counter()
    jobs, statements = asyncio.run(roll_up())
    print(f"rolled up {jobs:,} finished jobs in {time.perf_counter() - started:.1f} s "
          f"({statements} statements)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            conn.execute(query("queue_samples_take"), {"keep_seconds": 8 * 86400.0})
            times.append((time.perf_counter() - started) * 1000)
        print(f"one sample of every queue: {statistics.median(times):.0f} ms "
              f"(median of 3)")
        conn.execute(SAMPLES)
        conn.execute(SAMPLE_ROLLUPS)
        conn.execute("VACUUM ANALYZE pgqueue.queue_samples")
        conn.execute("VACUUM ANALYZE pgqueue.queue_sample_rollups")
        conn.execute("VACUUM ANALYZE pgqueue.finished_rollups")
        count = conn.execute("SELECT count(*) FROM pgqueue.queue_samples").fetchone()
        print(f"samples: {count[0] if count else 0:,} (a week every 10 s)")


def pages(live: int, history: int) -> list[str]:
    some_live, some_done = history + live // 2, history // 2
    return ["/", "/queues/email", "/jobs", "/jobs?state=failed", "/jobs?queue=email&state=failed",
            "/jobs?state=scheduled", "/jobs?state=retrying", "/jobs?state=running",
            "/jobs?state=unclaimable", f"/jobs?id={some_done}", f"/jobs?id={some_live}",
            "/jobs?args=%7B%22order_id%22%3A+42%7D", "/jobs?error=upstream+13",
            f"/jobs?unique_key=key-{some_done - some_done % 10}",
            f"/jobs?cursor={some_done}", f"/jobs/{some_done}", "/workers",
            "/charts?range=hour", "/charts?range=day", "/charts?range=week",
            "/batches", "/periodic"]


def time_pages(dsn: str, paths: list[str], runs: int = 5, title: str = "") -> None:
    with ConnectionPool(dsn, min_size=1, max_size=2, kwargs={"autocommit": True},
                        configure=configure_connection) as pool:
        dashboard = Dashboard(pool)
        print(f"\n{title}\n{'page':48} {'median ms':>10} {'max ms':>8}")
        for path in paths:
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                response = dashboard.handle(Request("GET", path, {"Host": "bench"}))
                times.append((time.perf_counter() - started) * 1000)
                assert response.status == 200, (path, response.body[:200])
            print(f"{path:48} {statistics.median(times):10.1f} {max(times):8.1f}")


def plans(conn: psycopg.Connection[Any], history: int) -> None:
    empty = {"queue": None, "task": None, "id": None, "args": None, "error": None,
             "unique_key": None, "batch_id": None, "since": None, "until": None,
             "before_id": None, "from_id": None, "limit": 50, "tags_all": None,
             "tags_any": None}
    cases = [
        ("queue_stats_list", {}),
        ("dashboard_jobs_live", {**empty, "kind": "scheduled"}),
        ("dashboard_jobs_history", {**empty, "state": "failed"}),
        ("dashboard_jobs_search", {**empty, "state": None, "args": '{"order_id": 42}',
                                   "since": "now() - 1 day"}),
        ("dashboard_chart_finished", {"since": "week", "bucket_seconds": 3600, "queue": None,
                                      "rolled_until": "watermark"}),
        ("dashboard_chart_finished", {"since": "day", "bucket_seconds": 600, "queue": None,
                                      "rolled_until": "watermark"}),
        ("dashboard_samples_chart", {"since": "week", "bucket_seconds": 3600, "queue": None}),
        ("dashboard_samples_latest", {"max_age_seconds": 120.0}),
        ("dashboard_queues_list", {"queue": None}),
        ("dashboard_queue_counts", {"queues": list(QUEUES), "bound": 10_000}),
        ("dashboard_workers_list", {}),
    ]
    conn.execute("SET jit = off")  # as the dashboard's connections
    with psycopg.ClientCursor(conn) as cur:
        for name, given in cases:
            params = {k: _param(conn, v) for k, v in given.items()}
            text = cur.mogrify(query(name), params or None)
            print(f"\n== EXPLAIN {name} ==")
            for (line,) in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + text):
                print(line)


def _param(conn: psycopg.Connection[Any], value: Any) -> Any:
    if value == "watermark":
        return conn.execute(query("rollup_state_get")).fetchone()[0]  # type: ignore[index]
    if value in ("now() - 1 day", "day"):
        return conn.execute("SELECT now() - interval '1 day'").fetchone()[0]  # type: ignore[index]
    if value == "week":
        return conn.execute("SELECT now() - interval '7 days'").fetchone()[0]  # type: ignore[index]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--live", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true",
                        help="100,000 live and 1,000,000 finished jobs")
    parser.add_argument("--database", help="use (and keep) this database; it is filled "
                                           "only when its history is empty")
    args = parser.parse_args()
    live, history = (100_000, 1_000_000) if args.quick else (args.live, args.history)
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with _database(args.dsn, args.database) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            pgqueue.migrate(conn)
            if conn.execute("SELECT NOT EXISTS (SELECT FROM pgqueue.finished_jobs)"
                            ).fetchone() != (False,):
                fill(conn, live, history)
            # A reused database keeps its roll-ups (the leader goes on from its
            # watermark); its samples are made again.
            conn.execute("TRUNCATE pgqueue.queue_samples, pgqueue.queue_sample_rollups")
        lead(dsn)
        time_pages(dsn, pages(live, history), title="with the leader's roll-ups and samples")
        with psycopg.connect(dsn, autocommit=True) as conn:
            plans(conn, history)
            conn.execute("UPDATE pgqueue.queue_samples SET sampled_at = sampled_at "
                         "- interval '10 minutes'")
        time_pages(dsn, ["/", "/queues/email", "/charts?range=hour"],
                   title="without a fresh sample (no worker running: counted, bounded)")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


@contextmanager
def _database(server_dsn: str, name: str | None) -> Iterator[str]:
    if name is None:
        with scratch_database(server_dsn) as dsn:
            yield dsn
        return
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        if admin.execute("SELECT FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            admin.execute(f'CREATE DATABASE "{name}"')
    yield psycopg.conninfo.make_conninfo(server_dsn, dbname=name)


if __name__ == "__main__":
    main()
