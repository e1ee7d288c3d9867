"""``queue_stats`` over a large history: ``python -m benchmarks stats``.

``pgqueue.finished_jobs`` is filled server-side with ``stats_history`` rows
(``INSERT … SELECT generate_series`` in chunks of a million, every index in place,
as the rows would have arrived): four queues of unequal weight (default 40 %,
email 30 %, webhooks 20 %, reports 10 %), 93 % succeeded, 5 % failed, 2 %
cancelled, independent of the queue, ``finished_at`` spread evenly over the last
30 days in id order (so 1/720 of the rows finished within the last hour). Each
queue also holds one ready and one scheduled live job. The fill's failed rows
leave one ``pgqueue.failed_counts`` delta each (migration 0007); they are folded
once with ``pgqueue.compact_failed_counts()``, as a worker's leader does every
reaper tick. Then ``VACUUM ANALYZE`` of both job tables and of the deltas, as
autovacuum would have left them, and a ``CHECKPOINT`` so the fill's writes are
not flushed while the query is timed.

Figures:

- ``stats_queue_stats``: median of 7 runs of ``SELECT * FROM pgqueue.queue_stats``
  (all rows fetched, after one warm-up run), in ms;
- ``stats_history_size``: ``pg_total_relation_size`` of ``pgqueue.finished_jobs``
  (table and indexes), in MiB.

``details.stats_failed_count_rows`` keeps how many delta rows the view summed.

The plan is captured once more in a session of its own with ``auto_explain``
(nested statements included, as the view calls a SQL function whose plan a plain
``EXPLAIN`` of the view does not show), and its scan nodes (type, relation,
index, rows, heap fetches, buffers, time) go to the result file under
``details.stats_plan``. Without the rights to load ``auto_explain`` only the
view's top-level plan is recorded. The counts the view returns are checked
against the fill before any figure counts.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

import psycopg

import pgqueue

from .harness import BenchmarkError, Results, Sizes, scratch_database

QUEUES = ("default", "email", "webhooks", "reports")
CHUNK = 1_000_000
DAYS = 30
RUNS = 7
TASK = "bench.history"

# Row g (1..total): queue from g % 10 (4/3/2/1 tenths); state from a hash of g, so
# independent of the queue and of time: 93 % succeeded, 5 % failed, 2 % cancelled.
FILL = """
INSERT INTO pgqueue.finished_jobs
    (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
     started_at, finished_at, worker_id, last_error, errors)
SELECT g,
       (ARRAY['default', 'default', 'default', 'default', 'email', 'email', 'email',
              'webhooks', 'webhooks', 'reports'])[1 + g %% 10],
       'bench.history_' || (g / 1000) %% 3,
       jsonb_build_object('n', g),
       0,
       s.state::pgqueue.job_state,
       CASE WHEN s.state = 'failed' THEN 5 ELSE 1 END,
       5,
       f - interval '3 seconds', f - interval '3 seconds', f - interval '1 second', f,
       '00000000-0000-0000-0000-000000000001',
       CASE WHEN s.state = 'failed' THEN 'RuntimeError: upstream said 503' END,
       CASE WHEN s.state = 'failed'
            THEN jsonb_build_array(jsonb_build_object(
                     'message', 'upstream said 503', 'kind', 'RuntimeError', 'attempt', 5))
            ELSE '[]'::jsonb END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g,
     LATERAL (SELECT (hashint8(g)::bigint + 2147483648) %% 100) h(bucket),
     LATERAL (SELECT CASE WHEN h.bucket < 93 THEN 'succeeded'
                          WHEN h.bucket < 98 THEN 'failed'
                          ELSE 'cancelled' END) s(state),
     LATERAL (SELECT now() - (%(total)s - g) * (%(days)s * interval '1 day' / %(total)s)) t(f)
"""

# What the fill holds per queue, computed from the rows themselves (a plain scan,
# not through the view) so the view's answer can be checked.
EXPECTED = """
SELECT queue,
       count(*) FILTER (WHERE state = 'failed'),
       count(*) FILTER (WHERE state = 'succeeded' AND finished_at > now() - interval '1 hour')
FROM pgqueue.finished_jobs GROUP BY queue
"""


def fill_history(dsn: str, total: int) -> float:
    """Insert ``total`` finished jobs, then one ready and one scheduled job per queue."""
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for first in range(1, total + 1, CHUNK):
            last = min(first + CHUNK - 1, total)
            conn.execute(FILL, {"first": first, "last": last, "total": total, "days": DAYS})
            if total > CHUNK:
                print(f"# stats: {last:,} of {total:,} history rows inserted "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
        conn.execute("SELECT setval(pg_get_serial_sequence('pgqueue.jobs', 'id'), %s)",
                     (total,))
        for queue in QUEUES:
            pgqueue.enqueue(conn, TASK, {"live": True}, queue=queue)
            pgqueue.enqueue(conn, TASK, {"live": True}, queue=queue, delay=3600)
        conn.execute("SELECT pgqueue.compact_failed_counts()")
        conn.execute("VACUUM ANALYZE pgqueue.finished_jobs")
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
        conn.execute("VACUUM ANALYZE pgqueue.failed_counts")
        # Flush the fill's dirty pages now rather than while timing (needs the
        # rights to CHECKPOINT; without them the timing may share the disk with it).
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass
    return time.perf_counter() - started


def time_queue_stats(dsn: str) -> tuple[list[float], list[tuple[Any, ...]]]:
    """Milliseconds of RUNS runs (after one warm-up) and the rows of the last."""
    times: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT * FROM pgqueue.queue_stats").fetchall()
        for _ in range(RUNS):
            started = time.perf_counter()
            rows = conn.execute("SELECT * FROM pgqueue.queue_stats").fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return times, rows


def check_counts(dsn: str, rows: list[tuple[Any, ...]], columns: list[str]) -> None:
    """The view's failed and succeeded_1h agree with the table (give or take the hour's edge)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        expected = {q: (int(f), int(s)) for q, f, s in conn.execute(EXPECTED).fetchall()}
    seen = {row[columns.index("queue")]: row for row in rows}
    if set(expected) != set(QUEUES) or not set(QUEUES) <= set(seen):
        raise BenchmarkError(f"queue_stats shows queues {sorted(seen)}; history holds "
                             f"{sorted(expected)}")
    for queue, (failed, recent) in expected.items():
        row = seen[queue]
        got_failed = row[columns.index("failed")]
        got_recent = row[columns.index("succeeded_1h")]
        # Rows cross the one-hour edge between the two reads: allow a little drift.
        if got_failed != failed or abs(got_recent - recent) > max(10, recent // 100):
            raise BenchmarkError(f"queue_stats for {queue}: failed {got_failed}, "
                                 f"succeeded_1h {got_recent}; the table holds {failed} "
                                 f"failed and {recent} succeeded in the last hour")


def _walk(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _walk(child)


def _node(plan: dict[str, Any]) -> dict[str, Any]:
    node = {
        "node": plan.get("Node Type"),
        "relation": plan.get("Relation Name"),
        "index": plan.get("Index Name"),
        "loops": plan.get("Actual Loops"),
        "rows_per_loop": plan.get("Actual Rows"),
        "heap_fetches": plan.get("Heap Fetches"),
        "shared_hit": plan.get("Shared Hit Blocks"),
        "shared_read": plan.get("Shared Read Blocks"),
        "total_ms": plan.get("Actual Total Time"),
        "index_cond": plan.get("Index Cond"),
        "filter": plan.get("Filter"),
        "rows_removed_by_filter": plan.get("Rows Removed by Filter"),
    }
    return {k: v for k, v in node.items() if v is not None}


def _summarise(statements: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """Node types and the scans of every statement: what the result file keeps."""
    types: set[str] = set()
    scans: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for statement in statements:
        plan = statement.get("Plan", {})
        nodes = list(_walk(plan))
        types.update(str(n.get("Node Type")) for n in nodes)
        statement_scans = [_node(n) for n in nodes if "Relation Name" in n]
        scans.extend(statement_scans)
        kept.append({"query": " ".join(str(statement.get("Query Text", "")).split())[:300],
                     "duration_ms": statement.get("Duration"),
                     "scans": statement_scans})
    only = [s for s in scans if s["node"] == "Index Only Scan"]
    return {
        "source": source,
        "node_types": sorted(types),
        "index_only_scans": len(only),
        "heap_fetches": sum(int(s.get("heap_fetches", 0)) * int(s.get("loops", 1))
                            for s in only),
        "seq_scans": sorted({s["relation"] for s in scans if s["node"] == "Seq Scan"}),
        "statements": kept,
    }


def capture_plan(dsn: str) -> dict[str, Any]:
    """The executed plan of ``SELECT * FROM pgqueue.queue_stats``, nested statements too."""
    notices: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute("LOAD 'auto_explain'")
        except psycopg.Error as exc:
            row = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
                               "SELECT * FROM pgqueue.queue_stats").fetchone()
            plans = row[0] if row else []
            summary = _summarise(plans, "EXPLAIN of the view only (auto_explain: "
                                        f"{type(exc).__name__})")
            return summary
        for setting, value in (("log_min_duration", "0"), ("log_analyze", "on"),
                               ("log_buffers", "on"), ("log_timing", "on"),
                               ("log_nested_statements", "on"), ("log_format", "json"),
                               ("log_level", "notice")):
            conn.execute(f"SET auto_explain.{setting} = '{value}'")
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("SELECT * FROM pgqueue.queue_stats").fetchall()
    statements = []
    for message in notices:
        head, sep, body = message.partition("plan:")
        if not sep:
            continue
        parsed = json.loads(body)
        duration = head.replace("duration:", "").replace("ms", "").strip()
        try:
            parsed["Duration"] = float(duration)
        except ValueError:
            pass
        statements.append(parsed)
    if not statements:
        raise BenchmarkError("auto_explain loaded but reported no plan")
    return _summarise(statements, "auto_explain, nested statements")


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """One comment line per scan of the plan, for the console."""
    lines = [f"# stats plan ({plan['source']}): {', '.join(plan['node_types'])}"]
    for statement in plan["statements"]:
        for scan in statement["scans"]:
            where = scan.get("index") or scan.get("relation")
            extra = (f", heap fetches {scan['heap_fetches']}"
                     if "heap_fetches" in scan else "")
            lines.append(
                f"#   {scan['node']} on {scan['relation']} ({where}): "
                f"{scan.get('loops', 0)} loops x {scan.get('rows_per_loop', 0):,} rows{extra}, "
                f"buffers hit {scan.get('shared_hit', 0):,} read {scan.get('shared_read', 0):,}, "
                f"{scan.get('total_ms', 0):.1f} ms per loop")
    return lines


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    total = sizes.stats_history
    with scratch_database(server_dsn, "stats") as dsn:
        seconds = fill_history(dsn, total)
        print(f"# stats: {total:,} history rows in {seconds:.0f} s, vacuumed and analysed",
              flush=True)
        times, rows = time_queue_stats(dsn)
        load = os.getloadavg() if hasattr(os, "getloadavg") else ()
        with psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.execute("SELECT * FROM pgqueue.queue_stats LIMIT 0")
            columns = [c.name for c in cur.description or ()]
            size = conn.execute(
                "SELECT pg_total_relation_size('pgqueue.finished_jobs')").fetchone()
            deltas = conn.execute("SELECT count(*) FROM pgqueue.failed_counts").fetchone()
        check_counts(dsn, rows, columns)
        plan = capture_plan(dsn)
        for line in plan_lines(plan):
            print(line, flush=True)
        results.details["stats_plan"] = plan
        results.details["stats_queue_stats_runs_ms"] = [round(t, 3) for t in times]
        results.details["stats_failed_count_rows"] = deltas[0] if deltas else None
        # The fill itself raises the load average; this is the load while timing.
        results.details["stats_load_average_at_timing"] = [round(x, 2) for x in load]
        results.add("stats_queue_stats", statistics.median(times), "ms",
                    f"median of {RUNS}, {total:,} finished jobs, {len(QUEUES)} queues, "
                    f"load {', '.join(f'{x:.1f}' for x in load)}")
        results.add("stats_history_size", (size[0] if size else 0) / 2**20, "MiB",
                    "pgqueue.finished_jobs with its indexes")
