"""History at scale: queue_stats over 1,000,000 finished jobs, and the retention choice.

    python -m benchmarks.history --dsn postgresql://postgres@127.0.0.1:5432/postgres

Creates its own database on that server and drops it at the end. Prints:
(a) EXPLAIN (ANALYZE, BUFFERS) of ``SELECT * FROM pgqueue.queue_stats`` and its
    median time with 1,000,000 rows in pgqueue.finished_jobs;
(b) retention: deleting the oldest 500,000 rows in batches of 10,000 from a plain
    table (plus the VACUUM that follows) against detaching and dropping the
    partitions of an equivalent table partitioned by day of finished_at, and the
    insert cost per row of both.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import conninfo

import pgqueue

ROWS = 1_000_000
DAYS = 20
PRUNE_ROWS = 500_000
BATCH = 10_000
QUEUES = ("default", "email", "reports", "webhooks")

# Finished jobs spread evenly over DAYS days up to now: 90% succeeded, 8% failed,
# 2% cancelled, round-robin over four queues.
FILL = """
INSERT INTO {table}
    (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
     started_at, finished_at, worker_id, last_error, errors)
SELECT g + %(offset)s,
       (ARRAY['default', 'email', 'reports', 'webhooks'])[1 + g %% 4],
       'bench_task', jsonb_build_object('n', g), 0,
       (CASE WHEN g %% 50 = 0 THEN 'cancelled'
             WHEN g %% 25 IN (1, 2) THEN 'failed' ELSE 'succeeded' END)::pgqueue.job_state,
       1, 5, f - interval '2 seconds', f - interval '2 seconds', f - interval '1 second', f,
       '00000000-0000-0000-0000-000000000001',
       CASE WHEN g %% 25 IN (1, 2) THEN 'boom' END, '[]'::jsonb
FROM generate_series(1, %(rows)s) g,
     LATERAL (SELECT now() - (%(rows)s - g) * (%(days)s * interval '1 day' / %(rows)s)) t(f)
"""


@contextmanager
def scratch_database(server_dsn: str) -> Iterator[str]:
    name = f"pgqueue_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = conninfo.conninfo_to_dict(server_dsn)
    params["dbname"] = name
    try:
        yield conninfo.make_conninfo("", **params)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> tuple[float, int]:
    started = time.perf_counter()
    cur = conn.execute(sql, params)
    return time.perf_counter() - started, cur.rowcount


def median_ms(conn: psycopg.Connection[Any], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute("SELECT * FROM pgqueue.queue_stats").fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def queue_stats_plan(conn: psycopg.Connection[Any]) -> None:
    print(f"== (a) queue_stats with {ROWS:,} finished jobs ==")
    for q in QUEUES:
        pgqueue.enqueue(conn, "bench_task", {"live": True}, queue=q)
        pgqueue.enqueue(conn, "bench_task", queue=q, delay=3600)
    seconds, _ = timed(conn, FILL.format(table="pgqueue.finished_jobs"),
                       {"rows": ROWS, "days": DAYS, "offset": 1_000_000})
    print(f"filled pgqueue.finished_jobs in {seconds:.1f} s")
    # The failed jobs of the fill are one count row each until compacted; a
    # worker's leader does this after every reap.
    conn.execute("SELECT pgqueue.compact_failed_counts()")
    conn.execute("VACUUM ANALYZE pgqueue.finished_jobs")
    conn.execute("VACUUM ANALYZE pgqueue.jobs")
    # pgqueue.queues holds a handful of rows and rarely changes, so autovacuum
    # never analyzes it; first measure it like that, as production sees it.
    plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM pgqueue.queue_stats")
    print("\n".join(row[0] for row in plan))
    print(f"queue_stats: {median_ms(conn):.1f} ms (median)")
    conn.execute("SET jit = off")
    print(f"queue_stats with jit = off: {median_ms(conn):.1f} ms (median)")
    conn.execute("RESET jit")
    conn.execute("ANALYZE pgqueue.queues")
    print(f"queue_stats after ANALYZE pgqueue.queues: {median_ms(conn):.1f} ms (median)")
    for row in conn.execute("SELECT * FROM pgqueue.queue_stats ORDER BY queue"):
        print("  ", row)


def retention(conn: psycopg.Connection[Any]) -> None:
    print(f"\n== (b) retention: drop the oldest {PRUNE_ROWS:,} of {ROWS:,} rows ==")
    conn.execute("CREATE TABLE plain (LIKE pgqueue.finished_jobs INCLUDING ALL)")
    conn.execute(
        "CREATE TABLE part (LIKE pgqueue.finished_jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        " PARTITION BY RANGE (finished_at)"
    )
    conn.execute("ALTER TABLE part ADD PRIMARY KEY (id, finished_at)")
    conn.execute("CREATE INDEX ON part (queue, state, finished_at)")
    for day in range(DAYS + 1, -2, -1):
        conn.execute(
            f"CREATE TABLE part_{day + 1} PARTITION OF part FOR VALUES FROM "
            f"(date_trunc('day', now()) - interval '{day} days') "
            f"TO (date_trunc('day', now()) - interval '{day - 1} days')"
        )
    for table in ("plain", "part"):
        seconds, _ = timed(conn, FILL.format(table=table),
                           {"rows": ROWS, "days": DAYS, "offset": 0})
        print(f"{table:5} bulk insert: {seconds:.1f} s, {seconds / ROWS * 1e6:.2f} µs per row")
    for table in ("plain", "part"):
        started = time.perf_counter()
        for batch in range(200):
            with conn.transaction():
                conn.execute(
                    FILL.format(table=table).replace("now()", "(now() + interval '1 hour')"),
                    {"rows": 100, "days": 0, "offset": 2_000_000 + batch * 100},
                )
        seconds = time.perf_counter() - started
        print(f"{table:5} 200 commits of 100 rows: {seconds / 20_000 * 1e6:.1f} µs per row")
    conn.execute("VACUUM ANALYZE plain")
    conn.execute("VACUUM ANALYZE part")

    row = conn.execute(
        "SELECT finished_at FROM plain ORDER BY finished_at OFFSET %s LIMIT 1", [PRUNE_ROWS]
    ).fetchone()
    assert row is not None
    cutoff = row[0]
    started = time.perf_counter()
    batches = deleted = 0
    while True:
        _, n = timed(
            conn,
            "DELETE FROM plain WHERE ctid = ANY (ARRAY("
            " SELECT ctid FROM plain WHERE finished_at < %s LIMIT %s))",
            [cutoff, BATCH],
        )
        if n == 0:
            break
        batches += 1
        deleted += n
    delete_seconds = time.perf_counter() - started
    vacuum_seconds, _ = timed(conn, "VACUUM plain")
    print(f"plain: deleted {deleted:,} rows in {batches} batches of {BATCH:,}: "
          f"{delete_seconds:.2f} s, then VACUUM {vacuum_seconds:.2f} s")

    old = [r[0] for r in conn.execute(
        "SELECT tableoid::regclass::text FROM part WHERE finished_at < %s GROUP BY 1",
        [cutoff],
    )]
    started = time.perf_counter()
    dropped = 0
    for name in old:
        later = conn.execute(f"SELECT count(*) FROM {name} WHERE finished_at >= %s",
                             [cutoff])
        whole = later.fetchone() == (0,)
        if whole:
            count = conn.execute(f"SELECT count(*) FROM {name}").fetchone()
            dropped += count[0] if count else 0
            conn.execute(f"ALTER TABLE part DETACH PARTITION {name}")
            conn.execute(f"DROP TABLE {name}")
    drop_seconds = time.perf_counter() - started
    print(f"part: detached and dropped whole day partitions holding {dropped:,} rows "
          f"(the day holding the cutoff stays): {drop_seconds:.3f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dsn", required=True, help="a database on the server to use")
    args = parser.parse_args(argv)
    with scratch_database(args.dsn) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        pgqueue.migrate(conn)
        server = conn.execute("SHOW server_version").fetchone()
        print(f"PostgreSQL {server[0] if server else '?'}")
        queue_stats_plan(conn)
        retention(conn)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
