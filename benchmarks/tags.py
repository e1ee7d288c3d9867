"""Tags at scale: finding jobs by tag in a long history, and what its indexing costs.

    python -m benchmarks.tags --dsn postgresql://postgres@127.0.0.1:5432/postgres
    python -m benchmarks.tags --rows 1000000          # a smaller history
    python -m benchmarks.tags --keep                  # keep the database, print its name
    python -m benchmarks.tags --database NAME         # reuse a kept database (no fill)

Creates its own database (dropped at the end unless ``--keep``) and fills
``pgqueue.finished_jobs`` server-side (``INSERT ... SELECT FROM generate_series``,
chunks of 1,000,000, every other index in place) with ``--rows`` finished jobs
(default 10,000,000) whose tags follow this distribution:

- 30 % of jobs have no tags at all;
- the others have ``customer:<c>``, with c log-uniform over 1..100,000 (so
  ``customer:1`` is on 6 % of jobs, ``customer:100`` on 0.09 %, ``customer:50000``
  on a handful), ``import`` on a quarter of them, ``priority:high`` on 1 %;
- ``campaign:spring`` on every job of one block of 1 % of the ids, 40 % of the way
  into history: a mid-frequency tag whose newest job is old.

With the fill stopped once ``--minutes`` (default 15) of loading is spent, the
figures are for the rows loaded (printed). Then the tag table is filled (its
time is what migration 0019 costs on such a history) and, for a rare, a
mid-frequency (spread and clustered) and a common tag, all-of and any-of, the median time of
:func:`pgqueue.list_jobs` and of the dashboard's job list (first page, newest
first, 50 rows) with EXPLAIN (ANALYZE, BUFFERS) of the list's statement.

``--drain`` (alone, or after the history part) measures the cost of the tag
table's trigger and the live GIN index on the outcome write: a worker in process
drains ``--drain-jobs`` tagged no-op jobs (two tags each) with them and without
them, alternating, same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import psycopg
from psycopg import conninfo

import pgqueue
from pgqueue import admin
from pgqueue._sql import query
from pgqueue.dashboard import data

from .drain import KINDS, tasks
from .harness import WorkerRun, scratch_database, verify_drained

CHUNK = 1_000_000
WORKER = "00000000-0000-0000-0000-000000000001"

# One row of history per g; see the module docstring for the tags.
FILL = """
INSERT INTO pgqueue.finished_jobs
    (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
     started_at, finished_at, worker_id, last_error, errors, tags)
SELECT g, (ARRAY['default', 'email', 'reports', 'webhooks'])[1 + g %% 4],
       'bench.task_' || g %% 3, jsonb_build_object('order_id', g), 0,
       (CASE WHEN g %% 50 = 0 THEN 'cancelled' WHEN g %% 25 IN (1, 2) THEN 'failed'
             ELSE 'succeeded' END)::pgqueue.job_state,
       1, 5, f - interval '3 seconds', f - interval '3 seconds', f - interval '1 second', f,
       %(worker)s::uuid, CASE WHEN g %% 25 IN (1, 2) THEN 'boom' END, '[]',
       CASE WHEN r.untagged AND NOT r.campaign THEN '{}'::text[] ELSE array_remove(ARRAY[
           'customer:' || floor(power(100000, r.c))::int,
           CASE WHEN r.i < 0.25 THEN 'import' END,
           CASE WHEN r.p < 0.01 THEN 'priority:high' END,
           CASE WHEN r.campaign THEN 'campaign:spring' END], NULL) END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g,
     LATERAL (SELECT now() - (%(total)s - g) * (interval '30 days' / %(total)s)) t(f),
     LATERAL (SELECT random() < 0.3 AS untagged, random() AS c, random() AS i,
                     random() AS p,
                     g BETWEEN %(campaign_first)s AND %(campaign_last)s AS campaign) r
"""

CASES: list[tuple[str, str, list[str]]] = [
    ("rare", "all", ["customer:50000"]),
    ("mid_spread", "all", ["customer:100"]),
    ("mid_priority", "all", ["priority:high"]),
    ("mid_clustered", "all", ["campaign:spring"]),
    ("common", "all", ["import"]),
    ("common_all_of_two", "all", ["import", "customer:1"]),
    ("rare_any_of_two", "any", ["customer:50000", "customer:60000"]),
    ("mixed_any_of_two", "any", ["customer:50000", "campaign:spring"]),
    ("absent", "all", ["no-such-tag"]),
]


def fill(conn: psycopg.Connection[Any], rows: int, minutes: float) -> int:
    """Load up to ``rows`` history rows in chunks; stop early past ``minutes``."""
    conn.execute("SET synchronous_commit = off")
    campaign_first = int(rows * 0.4) + 1
    started = time.perf_counter()
    loaded = 0
    while loaded < rows:
        last = min(rows, loaded + CHUNK)
        conn.execute(FILL, {"first": loaded + 1, "last": last, "total": rows,
                            "worker": WORKER, "campaign_first": campaign_first,
                            "campaign_last": campaign_first + rows // 100 - 1})
        loaded = last
        spent = time.perf_counter() - started
        print(f"  loaded {loaded:,} rows in {spent:.0f} s", flush=True)
        if spent / 60 > minutes and loaded < rows:
            print(f"  stopping at {loaded:,} rows: the {minutes:g} minute budget is spent",
                  flush=True)
            break
    conn.execute("SELECT setval('pgqueue.jobs_id_seq', %s)", [loaded + 1])
    conn.execute("SELECT pgqueue.compact_failed_counts()")
    return loaded


def build_tag_table(conn: psycopg.Connection[Any]) -> None:
    """Fill finished_job_tags as migration 0019 does for an existing history, timed."""
    conn.execute("TRUNCATE pgqueue.finished_job_tags")
    started = time.perf_counter()
    conn.execute("INSERT INTO pgqueue.finished_job_tags (tag, job_id) "
                 "SELECT DISTINCT t.tag, h.id FROM pgqueue.finished_jobs h "
                 "CROSS JOIN LATERAL unnest(h.tags) AS t(tag) WHERE h.tags <> '{}'")
    seconds = time.perf_counter() - started
    conn.execute("ALTER TABLE pgqueue.finished_jobs ENABLE TRIGGER finished_jobs_tags_inserted")
    size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size("
                        "'pgqueue.finished_job_tags')), pg_size_pretty("
                        "pg_relation_size('pgqueue.finished_jobs'))").fetchone()
    print(f"filled finished_job_tags in {seconds:.1f} s (what migration 0019 costs this "
          f"history); table and index {size[0] if size else '?'}, history "
          f"{size[1] if size else '?'}", flush=True)
    started = time.perf_counter()
    conn.execute("VACUUM ANALYZE pgqueue.finished_jobs")
    conn.execute("VACUUM ANALYZE pgqueue.finished_job_tags")
    print(f"VACUUM ANALYZE in {time.perf_counter() - started:.1f} s", flush=True)


def median_ms(call: Callable[[], Any], runs: int = 7) -> tuple[float, float]:
    """(median, max) of ``runs`` calls after one warm-up, in ms."""
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def explain(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> str:
    sql = "EXPLAIN (ANALYZE, BUFFERS) " + query(name)
    return "\n".join(row[0] for row in conn.execute(sql, params, prepare=False))


def queries(conn: psycopg.Connection[Any], *, plans: bool) -> None:
    print("\n== newest 50 jobs by tag: pgqueue.list_jobs and the dashboard's list ==")
    count_sql = ("SELECT count(*) FROM pgqueue.finished_jobs WHERE tags <> '{}' AND "
                 "CASE WHEN %(mode)s = 'all' THEN tags @> %(tags)s ELSE tags && %(tags)s END")
    for label, mode, tags in CASES:
        row = conn.execute(count_sql, {"mode": mode, "tags": tags}).fetchone()
        matching = int(row[0]) if row else 0
        admin_ms, admin_max = median_ms(partial(admin.list_jobs, conn, tags=tags,
                                                tags_mode=mode))
        wanted = data.JobFilter(tags=tuple(tags), tags_mode=mode)
        dash_ms, dash_max = median_ms(partial(data.search_jobs, conn, wanted,
                                              datetime.now(UTC)))
        print(f"{label:<18} {mode}-of {tags}: {matching:,} matching; list_jobs "
              f"{admin_ms:.1f} ms (max {admin_max:.1f}), dashboard {dash_ms:.1f} ms "
              f"(max {dash_max:.1f})", flush=True)
        if plans:
            params = admin.list_jobs_params(tags=tags, tags_mode=mode)
            print(explain(conn, "job_history_by_tags", {**params, "state": None}),
                  flush=True)


def history(server_dsn: str, args: argparse.Namespace) -> None:
    if args.database:
        dsn = conninfo.make_conninfo(server_dsn, dbname=args.database)
        with psycopg.connect(dsn, autocommit=True) as conn:
            queries(conn, plans=not args.no_plans)
        return
    name = f"pgqueue_bench_tags_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin_conn:
        admin_conn.execute(f'CREATE DATABASE "{name}"')
    dsn = conninfo.make_conninfo(server_dsn, dbname=name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            pgqueue.migrate(conn)
            # Loaded as an existing history: the migration's fill is timed after.
            conn.execute("ALTER TABLE pgqueue.finished_jobs "
                         "DISABLE TRIGGER finished_jobs_tags_inserted")
            for q in ("default", "email", "reports", "webhooks"):
                pgqueue.enqueue(conn, "bench.task_0", {"live": True}, queue=q)
            print(f"== filling {args.rows:,} history rows (database {name}) ==", flush=True)
            started = time.perf_counter()
            loaded = fill(conn, args.rows, args.minutes)
            print(f"filled {loaded:,} rows in {time.perf_counter() - started:.0f} s",
                  flush=True)
            build_tag_table(conn)
            queries(conn, plans=not args.no_plans)
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(server_dsn, autocommit=True) as admin_conn:
                admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the index's cost on the outcome write -----------------------------------------------

DROP_INDEXES = ("DROP TRIGGER finished_jobs_tags_inserted ON pgqueue.finished_jobs; "
                "DROP INDEX pgqueue.jobs_tags_idx")


def drain_rate(server_dsn: str, jobs: int, *, indexed: bool) -> float:
    with scratch_database(server_dsn, "tags_drain") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if not indexed:
                conn.execute(DROP_INDEXES)
            # History of 200,000 tagged jobs, so the index is not empty.
            conn.execute(FILL, {"first": 1, "last": 200_000, "total": 200_000,
                                "worker": WORKER, "campaign_first": 80_001,
                                "campaign_last": 82_000})
            conn.execute("SELECT setval('pgqueue.jobs_id_seq', 300000)")
            conn.execute(
                "INSERT INTO pgqueue.jobs (task, queue, args, tags) "
                "SELECT %s, 'default', jsonb_build_object('n', g), "
                "ARRAY['customer:' || g %% 1000, 'import'] FROM generate_series(1, %s) g",
                (KINDS["async"], jobs))
            conn.execute("VACUUM ANALYZE pgqueue.jobs")
            conn.execute("VACUUM ANALYZE pgqueue.finished_jobs")
        run = WorkerRun(tasks, dsn, target=jobs, concurrency=50)
        run.start()
        try:
            run.wait_done(60 + jobs / 50)
        finally:
            run.stop()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM pgqueue.finished_jobs WHERE id <= 200000")
        verify_drained(dsn, jobs)
        return run.jobs_per_second()


def drain(server_dsn: str, jobs: int, rounds: int) -> None:
    print(f"\n== drain of {jobs:,} tagged jobs (2 tags each), async no-op, concurrency 50 ==")
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for indexed in (False, True):
            rate = drain_rate(server_dsn, jobs, indexed=indexed)
            rates[indexed].append(rate)
            print(f"  {'with' if indexed else 'without':>7} tag indexing: {rate:,.0f} jobs/s",
                  flush=True)
    with_index = statistics.median(rates[True])
    without = statistics.median(rates[False])
    print(f"drain median: without {without:,.0f} jobs/s, with {with_index:,.0f} jobs/s "
          f"({(with_index / without - 1) * 100:+.1f} %); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dsn", default=os.environ.get("PGQUEUE_BENCH_DSN",
                                                        "postgresql://postgres@127.0.0.1/postgres"))
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--database", help="a database this benchmark filled and kept")
    parser.add_argument("--no-plans", action="store_true")
    parser.add_argument("--drain", action="store_true", help="also measure the drain")
    parser.add_argument("--drain-only", action="store_true")
    parser.add_argument("--drain-jobs", type=int, default=5_000)
    parser.add_argument("--drain-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.drain_only:
        history(args.dsn, args)
    if args.drain or args.drain_only:
        drain(args.dsn, args.drain_jobs, args.drain_rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
