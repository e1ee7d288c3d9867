"""What batches cost: draining no-op jobs that belong to one batch vs plain jobs.

``python -m benchmarks.batches [--jobs 20000] [--rounds 3] [--concurrency 50]
[--history 0] [--dsn ...]``

Each round, in a fresh database each time: N async no-op jobs are enqueued with
``pgqueue.enqueue_many`` in one transaction (COPY), plainly or inside
``pgqueue.batch``; then one in-process worker drains them. The drain figure is N
over first start to N-th outcome written, as in ``benchmarks.drain``. Rounds
alternate plain and batch so drift on the machine hits both alike; the median of
each is printed with the ratio, plus the bulk enqueue rate, how long after the
last outcome the batch was marked finished, and the database time spent in
``pgqueue.after_finish`` (the settling a batch adds to each outcome write) per
job, from ``pg_stat_user_functions``: a figure that, unlike throughput, hardly
moves with other load on the machine.

``--history N`` first fills ``pgqueue.finished_jobs`` with N old rows and
analyzes it, as in a database that has run for a while: on a fresh database
the planner reads the tiny, unanalyzed history with sequential scans.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import psycopg
from psycopg import sql

import pgqueue

from .harness import (
    DEFAULT_DSN,
    BenchmarkError,
    WorkerRun,
    scratch_database,
    wait_sessions_closed,
)

TASK = "bench.noop_async"


async def noop_async(n: int = 0) -> None:
    return None


tasks = pgqueue.Registry()
tasks.task(noop_async, name=TASK)


def one_round(server_dsn: str, n: int, concurrency: int, batched: bool,
              history: int = 0) -> dict[str, float]:
    with scratch_database(server_dsn, "batch" if batched else "plain") as dsn:
        if history:
            _fill_history(dsn, history)
        jobs = [{"task": TASK, "args": {"n": i}} for i in range(n)]
        started = time.perf_counter()
        with psycopg.connect(dsn) as conn:
            if batched:
                with pgqueue.batch(conn, name="bench") as b:
                    b.enqueue_many(jobs)  # type: ignore[arg-type]
                batch_id = b.id
            else:
                pgqueue.enqueue_many(conn, jobs)  # type: ignore[arg-type]
        enqueue_seconds = time.perf_counter() - started
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE pgqueue.jobs")
            conn.execute(sql.SQL("ALTER DATABASE {} SET track_functions = 'pl'").format(
                sql.Identifier(conn.info.dbname)))
        run = WorkerRun(tasks, dsn, target=n, concurrency=concurrency)
        run.start()
        try:
            run.wait_done(60 + n / 100)
            figures = {"drain": run.jobs_per_second(), "enqueue": n / enqueue_seconds}
            if batched:
                figures["finish_lag_ms"] = _finish_lag(dsn, batch_id) * 1000
        finally:
            run.stop()
        _verify(dsn, n)
        figures["after_finish_us"] = _after_finish_seconds(dsn) / n * 1e6
        return figures


def _after_finish_seconds(dsn: str) -> float:
    """Database time in pgqueue.after_finish so far (statistics of closed sessions)."""
    wait_sessions_closed(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT COALESCE(sum(total_time), 0) FROM pg_stat_user_functions "
                           "WHERE schemaname = 'pgqueue' AND funcname = 'after_finish'"
                           ).fetchone()
    return float(row[0]) / 1000 if row else 0.0


def _verify(dsn: str, n: int) -> None:
    """All n jobs succeeded (the history rows of --history have negative ids)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pgqueue.jobs), "
            "(SELECT count(*) FROM pgqueue.finished_jobs WHERE id > 0 AND state = 'succeeded'), "
            "(SELECT count(*) FROM pgqueue.finished_jobs WHERE id > 0)").fetchone()
    if row != (0, n, n):
        raise BenchmarkError(f"expected {n} succeeded jobs and none live; live, succeeded, "
                             f"finished: {row}")


def _fill_history(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.finished_jobs (id, queue, task, args, priority, state, attempt, "
            "max_attempts, run_at, created_at, started_at, finished_at, errors) "
            "SELECT -g, 'default', %s, '{}', 0, 'succeeded', 1, 5, t, t, t, t, '[]' "
            "FROM generate_series(1, %s) g, LATERAL (SELECT now() - interval '1 day') AS x(t)",
            [TASK, rows])
        conn.execute("VACUUM ANALYZE pgqueue.finished_jobs")


def _finish_lag(dsn: str, batch_id: int) -> float:
    """Seconds from the batch's last job finishing to the batch being marked finished."""
    deadline = time.monotonic() + 30
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT extract(epoch FROM b.finished_at - (SELECT max(h.finished_at) "
                "FROM pgqueue.finished_jobs h WHERE h.batch_id = b.id))::float8 "
                "FROM pgqueue.job_batches b WHERE b.id = %s", [batch_id]).fetchone()
            if row is not None and row[0] is not None:
                return float(row[0])
            if time.monotonic() > deadline:
                raise BenchmarkError(f"batch {batch_id} was not finished 30 s after its jobs")
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batches", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--history", type=int, default=0,
                        help="finished jobs already in history (analyzed) before each round")
    parser.add_argument("--dsn", default=os.environ.get("PGQUEUE_BENCH_DSN", DEFAULT_DSN))
    args = parser.parse_args(argv)
    plain: list[dict[str, float]] = []
    batched: list[dict[str, float]] = []
    for i in range(args.rounds):
        for is_batch, into in ((False, plain), (True, batched)):
            figures = one_round(args.dsn, args.jobs, args.concurrency, is_batch, args.history)
            into.append(figures)
            print(f"round {i + 1} {'batch' if is_batch else 'plain'}: "
                  + ", ".join(f"{k} {v:,.1f}" for k, v in figures.items()), flush=True)

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    p_drain, b_drain = median(plain, "drain"), median(batched, "drain")
    p_enq, b_enq = median(plain, "enqueue"), median(batched, "enqueue")
    print(f"\n{args.jobs:,} async no-op jobs, concurrency {args.concurrency}, one worker, "
          f"{args.history:,} jobs in history before, median of {args.rounds} rounds")
    print(f"drain   plain {p_drain:,.0f} jobs/s   in a batch {b_drain:,.0f} jobs/s   "
          f"({b_drain / p_drain:.2f}x)")
    print(f"enqueue plain {p_enq:,.0f} jobs/s   in a batch {b_enq:,.0f} jobs/s   "
          f"({b_enq / p_enq:.2f}x)")
    print(f"pgqueue.after_finish: {median(batched, 'after_finish_us'):.1f} us of database time "
          f"per job in a batch ({median(plain, 'after_finish_us'):.1f} for plain jobs)")
    print(f"batch marked finished {median(batched, 'finish_lag_ms'):.1f} ms after its last job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
