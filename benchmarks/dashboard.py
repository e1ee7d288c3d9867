"""Dashboard page times on a large database, with the plans of its queries.

    python -m benchmarks.dashboard --dsn postgresql://postgres@127.0.0.1:5432/postgres
    python -m benchmarks.dashboard --quick      # 100,000 live, 1,000,000 in history

Creates its own database, fills ``pgqueue.jobs`` (default 1,000,000 live jobs:
ready, scheduled, retrying, a few running) and ``pgqueue.finished_jobs``
(default 10,000,000 over 7 days, 8 % failed) with every index in place, then
renders each page through the dashboard's own handler (no socket) and prints the
median of 5 renders, and EXPLAIN (ANALYZE, BUFFERS) of the queries behind them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

import pgqueue
from benchmarks.history import scratch_database
from pgqueue._sql import query
from pgqueue.dashboard import Dashboard
from pgqueue.dashboard.http import Request

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
    for table in ("finished_jobs", "jobs", "queues", "workers"):
        conn.execute(f"VACUUM ANALYZE pgqueue.{table}")
    print(f"filled {live:,} live and {history:,} finished jobs in "
          f"{time.perf_counter() - started:.0f} s")


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


def time_pages(dsn: str, paths: list[str], runs: int = 5) -> None:
    with ConnectionPool(dsn, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        dashboard = Dashboard(pool)
        print(f"\n{'page':48} {'median ms':>10} {'max ms':>8}")
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
             "before_id": None, "limit": 50}
    cases = [
        ("queue_stats_list", {}),
        ("dashboard_jobs_live", {**empty, "kind": "scheduled"}),
        ("dashboard_jobs_history", {**empty, "state": "failed"}),
        ("dashboard_jobs_search", {**empty, "state": None, "args": '{"order_id": 42}',
                                   "since": "now() - 1 day"}),
        ("dashboard_chart_finished", {"since": "week", "bucket_seconds": 3600, "queue": None}),
        ("dashboard_workers_list", {}),
    ]
    with psycopg.ClientCursor(conn) as cur:
        for name, given in cases:
            params = {k: _param(conn, v) for k, v in given.items()}
            text = cur.mogrify(query(name), params or None)
            print(f"\n== EXPLAIN {name} ==")
            for (line,) in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + text):
                print(line)


def _param(conn: psycopg.Connection[Any], value: Any) -> Any:
    if value == "now() - 1 day":
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
    args = parser.parse_args()
    live, history = (100_000, 1_000_000) if args.quick else (args.live, args.history)
    with scratch_database(args.dsn) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            pgqueue.migrate(conn)
            fill(conn, live, history)
        time_pages(dsn, pages(live, history))
        with psycopg.connect(dsn, autocommit=True) as conn:
            plans(conn, history)


if __name__ == "__main__":
    main()
