"""What progress reports and snoozes cost a worker.

``python -m benchmarks.reports [--jobs 20000] [--rounds 3] [--concurrency 50]
[--seconds 5] [--dsn ...]``

In one run, rounds alternate between four drains of N ready async jobs, each in
a fresh database, one in-process worker (as ``benchmarks.drain``: N outcomes
over first start to N-th outcome written):

- ``plain``: no-op jobs;
- ``progress``: each job calls ``ctx.set_progress(i, 10)`` ten times, then returns
  (its last report is written with its outcome, the others are coalesced away
  or written by the reporter while jobs run);
- ``snooze``: each job snoozes once (``Snooze(0)``) and succeeds on its second
  run; the figure is attempts per second (2N outcomes);
- ``retry``: the same with ``Retry(0)`` instead, for comparison.

The medians give the drain rates, and the cost of one ``set_progress`` call in
the drain as (1/progress - 1/plain) / 10. A pure loop also times
``set_progress`` alone (what the handler pays, no I/O).

Then the write load: ``concurrency`` jobs report progress without pause (each
call followed by ``await asyncio.sleep(0)``) for ``--seconds``; the figures are
the reports made per second, and the rows the reporter updated per second in
``pgqueue.jobs`` (``n_tup_upd``, heartbeats slowed to one per minute so they do
not count) with the share of HOT updates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from typing import Any

import psycopg

import pgqueue
from pgqueue.types import Job, JobContext

from .harness import (
    DEFAULT_DSN,
    BenchmarkError,
    WorkerRun,
    insert_ready_jobs,
    scratch_database,
)

KINDS = {"plain": "bench.plain", "progress": "bench.progress", "snooze": "bench.snooze",
         "retry": "bench.retry"}
REPORTS_PER_JOB = 10

tasks = pgqueue.Registry()


async def plain(n: int = 0) -> None:
    return None


async def progress(ctx: pgqueue.JobContext, n: int = 0) -> None:
    for i in range(REPORTS_PER_JOB):
        ctx.set_progress(i + 1, REPORTS_PER_JOB)


async def snooze(ctx: pgqueue.JobContext, n: int = 0) -> None:
    if _first_run(ctx):
        raise pgqueue.Snooze(0)


async def retry(ctx: pgqueue.JobContext, n: int = 0) -> None:
    if ctx.attempt == 1:
        raise pgqueue.Retry(0)


_SNOOZED: set[int] = set()


def _first_run(ctx: pgqueue.JobContext) -> bool:
    if ctx.id in _SNOOZED:
        return False
    _SNOOZED.add(ctx.id)
    return True


async def reporting(ctx: pgqueue.JobContext, seconds: float, n: int = 0) -> int:
    deadline = time.monotonic() + seconds
    calls = 0
    while time.monotonic() < deadline:
        calls += 1
        ctx.set_progress(calls, message="working")
        await asyncio.sleep(0)
    return calls


tasks.task(plain, name="bench.plain")
tasks.task(progress, name="bench.progress")
tasks.task(snooze, name="bench.snooze")
tasks.task(retry, name="bench.retry", max_attempts=2,
           retry=pgqueue.RetryPolicy(base_seconds=0, max_seconds=0, jitter=0))
tasks.task(reporting, name="bench.reporting")


def drain_round(server_dsn: str, kind: str, n: int, concurrency: int) -> float:
    with scratch_database(server_dsn, f"reports_{kind}") as dsn:
        insert_ready_jobs(dsn, KINDS[kind], n)
        _SNOOZED.clear()
        outcomes = 2 * n if kind in ("snooze", "retry") else n
        run = WorkerRun(tasks, dsn, target=outcomes, concurrency=concurrency)
        run.start()
        try:
            run.wait_done(60 + n / 50)
            rate = run.jobs_per_second()
        finally:
            run.stop()
        _verify(dsn, n)
        return rate


def _verify(dsn: str, n: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM pgqueue.jobs), (SELECT count(*) "
                           "FROM pgqueue.finished_jobs WHERE state = 'succeeded')").fetchone()
    if row != (0, n):
        raise BenchmarkError(f"expected {n} succeeded jobs and none live; got {row}")


def write_load(server_dsn: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Reports per second made, and rows the reporter wrote per second."""
    with scratch_database(server_dsn, "reports_load") as dsn:
        with psycopg.connect(dsn) as conn:
            pgqueue.enqueue_many(conn, [{"task": "bench.reporting", "args": {"seconds": seconds}}
                                        for _ in range(concurrency)])
        run = WorkerRun(tasks, dsn, target=concurrency, concurrency=concurrency,
                        heartbeat_interval=60.0, stall_timeout=600.0)
        before = _updates(dsn)
        run.start()
        try:
            run.wait_done(60 + seconds * 2)
        finally:
            run.stop()
        after = _updates(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT sum((result)::bigint), "
                               "extract(epoch FROM max(finished_at) - min(started_at))::float8 "
                               "FROM pgqueue.finished_jobs").fetchone()
        if row is None or row[0] is None:
            raise BenchmarkError("the reporting jobs did not finish")
        calls, elapsed = float(row[0]), float(row[1])
        updated = after[0] - before[0] - concurrency  # the claims' updates
        hot = after[1] - before[1]
        return {"reports_per_s": calls / elapsed, "rows_per_s": updated / elapsed,
                "hot_share": hot / max(1, after[0] - before[0])}


def _updates(dsn: str) -> tuple[int, int]:
    """n_tup_upd and n_tup_hot_upd of pgqueue.jobs (reported at transaction end)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                           "WHERE schemaname = 'pgqueue' AND relname = 'jobs'").fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def set_progress_seconds(calls: int = 200_000) -> float:
    """Seconds per ``ctx.set_progress`` call, in memory (a tracked context)."""
    job = Job(1, "q", "t", {}, 0, 1, 1, None, None, None, claim_token=1)  # type: ignore[arg-type]
    tracked: list[JobContext] = []
    ctx = JobContext(job, "w", tracked.append)
    started = time.perf_counter()
    for i in range(calls):
        ctx.set_progress(i, calls)
    return (time.perf_counter() - started) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--dsn", default=os.environ.get("PGQUEUE_BENCH_DSN", DEFAULT_DSN))
    args = parser.parse_args(argv)
    rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for i in range(args.rounds):
        for kind in KINDS:
            rate = drain_round(args.dsn, kind, args.jobs, args.concurrency)
            rates[kind].append(rate)
            print(f"round {i + 1} {kind}: {rate:,.0f} outcomes/s", flush=True)
    median = {kind: statistics.median(values) for kind, values in rates.items()}
    per_update = (1 / median["progress"] - 1 / median["plain"]) / REPORTS_PER_JOB
    load = write_load(args.dsn, args.concurrency, args.seconds)
    figures: dict[str, Any] = {
        "reports_drain_plain": median["plain"], "reports_drain_progress": median["progress"],
        "reports_cost_per_update_us": per_update * 1e6,
        "reports_set_progress_us": set_progress_seconds() * 1e6,
        "reports_attempts_snooze": median["snooze"], "reports_attempts_retry": median["retry"],
        "reports_load_reports_per_s": load["reports_per_s"],
        "reports_load_rows_per_s": load["rows_per_s"],
        "reports_load_hot_share": load["hot_share"],
    }
    print(f"\n{args.jobs:,} async jobs, concurrency {args.concurrency}, one worker, median of "
          f"{args.rounds} rounds; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, value in figures.items():
        print(f"{name} {value:,.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
