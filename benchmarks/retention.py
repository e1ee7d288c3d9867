"""Retention: the leader prunes a large expired history while a drain runs.

    python -m benchmarks retention [--quick | --smoke]
    python -m benchmarks.retention --rows 2000000 [--dsn ...]

History is built server-side (``INSERT ... SELECT generate_series``, in chunks of
1,000,000): ``rows`` finished jobs over four queues, all past the default
retention (90% succeeded, 8% failed, 2% cancelled, finished 31 to 90 days ago),
plus 1% recent ones that must stay; then ``VACUUM ANALYZE``, as a history that
accumulated would be. A producer keeps about 20,000 ready no-op jobs queued on
another queue while, in the same run:

1. a worker with ``retention="off"`` drains for a window: the drain without the
   pruner (``retention_drain_without``);
2. it stops and a worker with the default retention starts: its leader prunes
   the whole history on the shared claim session while it drains
   (``retention_drain_with``); the pruner's rate is the rows it deleted over
   the time from its first to its last deleting statement;
3. that worker drains a last window once the pruning is over
   (``retention_drain_after``: what the machine did meanwhile).

While the pruner runs, a sampler reads ``pg_stat_activity`` and ``pg_locks``
every 10 ms: the longest pruning statement seen on the server (its row locks
last exactly as long: each statement commits alone) and the most lock requests
of this database seen waiting at once. The pruner's own timing of each
statement (``JobsPruned.duration_seconds``, which includes waiting for a claim
on the shared session) gives the p50, p99 and longest.

Bloat: ``pgqueue.finished_jobs`` (heap and indexes) before, right after the
pruning and after a plain ``VACUUM``. Autovacuum may be off on the server
(``SHOW autovacuum`` is recorded); the scenario runs the VACUUM autovacuum
would, so the figure is the same either way: space reusable by new history,
the file not shrunk (the oldest rows sit at the start of the heap).
Checked: exactly the expired rows are gone, the recent ones stay, every drained
job succeeded.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import psycopg

from . import bloat
from .drain import tasks
from .harness import BenchmarkError, Results, Sizes, WorkerRun, scratch_database

CONCURRENCY = 50
CHUNK = 1_000_000
QUEUES = ("hist-a", "hist-b", "hist-c", "hist-d")
WINDOWS = {"full": 60.0, "quick": 10.0, "smoke": 1.0}

# Rows g of one chunk: queue round-robin; 90% succeeded, 8% failed, 2% cancelled;
# finished 31 to 90 days ago (expired: failed keeps 30 days) or, for `recent`,
# within the last 12 hours (kept by every default).
FILL = """
INSERT INTO pgqueue.finished_jobs
    (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
     started_at, finished_at, worker_id, last_error, errors)
SELECT g, (%(queues)s::text[])[1 + g %% 4], 'bench.history', jsonb_build_object('n', g), 0,
       (CASE WHEN g %% 50 = 0 THEN 'cancelled'
             WHEN g %% 25 IN (1, 2) THEN 'failed' ELSE 'succeeded' END)::pgqueue.job_state,
       1, 5, f - interval '2 seconds', f - interval '2 seconds', f - interval '1 second', f,
       '00000000-0000-0000-0000-000000000001',
       CASE WHEN g %% 25 IN (1, 2) THEN 'boom' END, '[]'::jsonb
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g,
     LATERAL (SELECT CASE WHEN %(recent)s::boolean THEN now() - (g %% 43200) * interval '1 second'
                          ELSE now() - interval '31 days'
                               - (g %% 5097600) * interval '1 second' END) t(f)
"""


def build_history(dsn: str, rows: int) -> tuple[int, float]:
    """``rows`` expired rows and 1% recent ones; returns (recent rows, seconds)."""
    recent = max(1, rows // 100)
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.queues (name) SELECT unnest(%s::text[])",
                     [list(QUEUES)])
        for first in range(1, rows + 1, CHUNK):
            conn.execute(FILL, {"queues": list(QUEUES), "first": first,
                                "last": min(rows, first + CHUNK - 1), "recent": False})
        conn.execute(FILL, {"queues": list(QUEUES), "first": rows + 1, "last": rows + recent,
                            "recent": True})
        # Past the history's ids, so the drain's jobs do not collide with them.
        conn.execute("SELECT setval('pgqueue.jobs_id_seq', %s)", [rows + recent + 1])
        conn.execute("VACUUM ANALYZE pgqueue.finished_jobs")
    return recent, time.perf_counter() - started


def history_sizes(dsn: str) -> tuple[int, int, int, int]:
    """(heap bytes, index bytes, live rows, dead tuples) of pgqueue.finished_jobs."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT pg_table_size('pgqueue.finished_jobs'), "
            "pg_indexes_size('pgqueue.finished_jobs'), "
            "(SELECT count(*) FROM pgqueue.finished_jobs), "
            "(SELECT n_dead_tup FROM pg_stat_user_tables "
            " WHERE relid = 'pgqueue.finished_jobs'::regclass)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3] or 0)


class LockSampler:
    """Every 10 ms: the oldest running pruning statement and the waiting lock requests."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.longest_statement = 0.0
        self.most_waiting = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT (SELECT COALESCE(max(extract(epoch FROM clock_timestamp() "
                    "  - a.query_start)), 0) FROM pg_stat_activity a "
                    "  WHERE a.datname = current_database() AND a.state = 'active' "
                    "    AND a.query LIKE '%%prune_history%%' AND a.pid <> pg_backend_pid()), "
                    "(SELECT count(*) FROM pg_locks l WHERE NOT l.granted "
                    "  AND l.database = (SELECT oid FROM pg_database "
                    "                    WHERE datname = current_database()))").fetchone()
                assert row is not None
                self.longest_statement = max(self.longest_statement, float(row[0]))
                self.most_waiting = max(self.most_waiting, int(row[1]))
                self.samples += 1
                self._stop.wait(0.01)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)


def drain_rate(worker: WorkerRun, seconds: float) -> float:
    """Jobs the worker finished per second over the next ``seconds``."""
    before, started = worker.finished, time.perf_counter()
    time.sleep(seconds)
    return (worker.finished - before) / (time.perf_counter() - started)


def measure(server_dsn: str, rows: int, window: float, results: Results) -> None:
    with scratch_database(server_dsn, "retention") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            autovacuum = str(conn.execute("SHOW autovacuum").fetchone()[0])  # type: ignore[index]
        recent, build_seconds = build_history(dsn, rows)
        heap0, index0, live0, _ = history_sizes(dsn)
        stop = threading.Event()
        producer = threading.Thread(target=bloat.produce, args=(dsn, 10**9, stop), daemon=True)
        producer.start()
        pruned: list[Any] = []
        try:
            idle = WorkerRun(tasks, dsn, target=10**9, concurrency=CONCURRENCY,
                             queues=["default"], retention="off")
            idle.start()
            drain_rate(idle, min(2.0, window / 2))  # warm up
            without = drain_rate(idle, window)
            idle.stop()
            drained = idle.finished

            busy = WorkerRun(tasks, dsn, target=10**9, concurrency=CONCURRENCY,
                             queues=["default"])
            busy.worker.subscribe(lambda e: pruned.append((time.perf_counter(), e))
                                  if type(e).__name__ == "JobsPruned" else None)
            with LockSampler(dsn) as sampler:
                busy.start()
                deadline = time.monotonic() + 600 + rows / 500
                during: list[float] = []
                while True:  # at least one window
                    during.append(drain_rate(busy, min(window, 5.0)))
                    if sum(e.jobs for _, e in pruned) >= rows:
                        break
                    if time.monotonic() > deadline:
                        raise BenchmarkError(f"pruned {sum(e.jobs for _, e in pruned)} of "
                                             f"{rows} rows in time")
            after = drain_rate(busy, window)
            busy.stop()
            drained += busy.finished
        finally:
            stop.set()
            producer.join(60)
        heap1, index1, live1, dead1 = history_sizes(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            vacuum_started = time.perf_counter()
            conn.execute("VACUUM pgqueue.finished_jobs")
            vacuum_seconds = time.perf_counter() - vacuum_started
            left = conn.execute(
                "SELECT count(*) FILTER (WHERE queue LIKE 'hist-%%'), "
                "count(*) FILTER (WHERE queue = 'default' AND state <> 'succeeded') "
                "FROM pgqueue.finished_jobs").fetchone()
        heap2, index2, _, dead2 = history_sizes(dsn)
    assert left is not None
    if left[0] != recent or left[1]:
        raise BenchmarkError(f"expected the {recent} recent history rows to stay and every "
                             f"drained job to succeed; found {left[0]} and {left[1]} failed")
    if live0 != rows + recent:
        raise BenchmarkError(f"built {live0} history rows, wanted {rows + recent}")
    times = [e.duration_seconds for _, e in pruned]
    span = pruned[-1][0] - pruned[0][0] if len(pruned) > 1 else max(times)
    note = f"{rows:,} expired rows (+{recent:,} kept), 4 queues; autovacuum {autovacuum}"
    mib = 1024 * 1024
    results.details["retention"] = {
        "rows": rows, "recent": recent, "autovacuum": autovacuum, "statements": len(pruned),
        "drained_jobs": drained, "drain_windows_during": [round(x, 1) for x in during],
        "lock_samples": sampler.samples, "vacuum_seconds": round(vacuum_seconds, 2),
        "history_build_seconds": round(build_seconds, 1)}
    results.add("retention_drain_without", without, "jobs/s", "drain, no pruner")
    results.add("retention_drain_with", statistics.mean(during), "jobs/s",
                "drain while the leader prunes (mean of 5 s windows)")
    results.add("retention_drain_after", after, "jobs/s", "same worker, pruning over")
    results.add("retention_drain_ratio", statistics.mean(during) / without, "x",
                "with / without")
    results.add("retention_prune_rate", rows / span, "rows/s", note)
    results.add("retention_prune_seconds", span, "s", note)
    results.add("retention_statement_p50", statistics.median(times) * 1000, "ms",
                "pruner's timing of one statement (1,000 rows)")
    results.add("retention_statement_p99", _quantile(times, 0.99) * 1000, "ms",
                "pruner's timing, includes waiting for a claim on the session")
    results.add("retention_statement_max", max(times) * 1000, "ms", "pruner's timing")
    results.add("retention_lock_longest", sampler.longest_statement * 1000, "ms",
                "longest pruning statement seen by the server (row locks held as long)")
    results.add("retention_lock_waiting_max", sampler.most_waiting, "requests",
                "most lock requests of the database seen waiting at once")
    results.add("retention_heap_before", heap0 / mib, "MiB", note)
    results.add("retention_heap_pruned", heap1 / mib, "MiB",
                f"{dead1:,} dead tuples; history also holds the {drained:,} drained jobs")
    results.add("retention_heap_vacuumed", heap2 / mib, "MiB",
                f"after VACUUM ({dead2:,} dead; space reusable, file not shrunk)")
    results.add("retention_indexes_before", index0 / mib, "MiB", "all indexes of history")
    results.add("retention_indexes_vacuumed", index2 / mib, "MiB",
                "after VACUUM (btrees do not shrink)")
    results.add("retention_vacuum_seconds", vacuum_seconds, "s", "the plain VACUUM after")
    results.add("retention_history_build_seconds", build_seconds, "s",
                "INSERT ... SELECT generate_series + VACUUM ANALYZE")
    _ = live1, index1


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    measure(server_dsn, sizes.retention, WINDOWS[sizes.mode], results)


def main(argv: list[str] | None = None) -> int:
    from .harness import DEFAULT_DSN

    parser = argparse.ArgumentParser(prog="python -m benchmarks.retention", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--window", type=float, default=30.0,
                        help="seconds of each drain window")
    args = parser.parse_args(argv)
    results = Results(mode=f"rows={args.rows}")
    measure(args.dsn, args.rows, args.window, results)
    load = ", ".join(f"{x:.1f}" for x in results.load_at_start)
    print(f"\nload average at start: {load}\n")
    print(results.summary())
    print(results.details["retention"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
