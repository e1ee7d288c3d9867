"""What queue limits, rate limits and per-key caps cost in drain throughput.

One worker in process drains N ready no-op async jobs at concurrency 50 in each
configuration; the configurations alternate over ``rounds`` in one run and the
best round of each counts, so slow moments of the machine hit all alike:

- ``plain``: no limit (the claim takes no lock);
- ``concurrency``: a concurrency limit far above what runs (1,000): every claim
  locks the queue's row and counts its running jobs;
- ``rate``: a rate limit far above the pace (1,000,000 a second): every claim
  also records each claimed job in the sliding window;
- ``keys``: a task with ``concurrency_per_key=1000`` and jobs over 100 keys:
  every claim takes an advisory lock per key and counts running jobs per key.

Then a binding limit: 3 running at once with jobs that sleep 10 ms, whose ideal
is 300 jobs/s; the figure is the share of that ideal reached.

Run: ``python -m benchmarks.limits [--jobs N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

import psycopg

import pgqueue

from .harness import (
    DEFAULT_DSN,
    BenchmarkError,
    Results,
    Sizes,
    WorkerRun,
    insert_ready_jobs,
    scratch_database,
    sizes_for,
    verify_drained,
)


async def noop(n: int = 0) -> None:
    return None


async def sleep_10ms(n: int = 0) -> None:
    await asyncio.sleep(0.01)


tasks = pgqueue.Registry()
tasks.task(noop, name="bench.noop_async")
tasks.task(noop, name="bench.noop_keyed", concurrency_per_key=1000)
tasks.task(sleep_10ms, name="bench.sleep_10ms")

CONFIGS = ("plain", "concurrency", "rate", "keys")


def _drain(server_dsn: str, config: str, n: int) -> float:
    task = "bench.noop_keyed" if config == "keys" else "bench.noop_async"
    with scratch_database(server_dsn, f"limits_{config}") as dsn:
        insert_ready_jobs(dsn, task, n)
        with psycopg.connect(dsn) as conn:
            if config == "concurrency":
                pgqueue.set_concurrency_limit(conn, "default", 1000)
            elif config == "rate":
                pgqueue.set_rate_limit(conn, "default", 1_000_000, per=1)
            elif config == "keys":
                conn.execute("UPDATE pgqueue.jobs SET concurrency_key = 'k' || (id % 100)")
            conn.execute("ANALYZE pgqueue.jobs")
        run = WorkerRun(tasks, dsn, target=n, concurrency=50)
        run.start()
        try:
            run.wait_done(120 + n / 100)
        finally:
            run.stop()
        verify_drained(dsn, n)
        if run.not_succeeded:
            raise BenchmarkError(f"{run.not_succeeded} jobs did not succeed")
        return run.jobs_per_second()


def _binding(server_dsn: str, n: int) -> float:
    with scratch_database(server_dsn, "limits_binding") as dsn:
        insert_ready_jobs(dsn, "bench.sleep_10ms", n)
        with psycopg.connect(dsn) as conn:
            pgqueue.set_concurrency_limit(conn, "default", 3)
        run = WorkerRun(tasks, dsn, target=n, concurrency=50)
        run.start()
        try:
            run.wait_done(120 + n / 10)
        finally:
            run.stop()
        verify_drained(dsn, n)
        return run.jobs_per_second()


def run(server_dsn: str, sizes: Sizes, results: Results, rounds: int = 2) -> None:
    n = sizes.drain
    best = dict.fromkeys(CONFIGS, 0.0)
    for _ in range(rounds):
        for config in CONFIGS:
            best[config] = max(best[config], _drain(server_dsn, config, n))
    results.add("limits_plain_c50", best["plain"], "jobs/s", f"{n:,} jobs, no limit")
    for config in CONFIGS[1:]:
        results.add(f"limits_{config}_c50", best[config], "jobs/s",
                    f"{n:,} jobs, {config} limit not binding")
        results.add(f"limits_{config}_ratio", best[config] / best["plain"], "x",
                    f"{config} / plain, same run")
    binding = _binding(server_dsn, max(300, n // 20))
    results.add("limits_binding_c3_sleep10ms", binding, "jobs/s",
                "concurrency limit 3, jobs sleep 10 ms (ideal 300)")
    results.add("limits_binding_share", binding / 300, "x", "of the ideal 300 jobs/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    results = Results(mode="limits")
    sizes = dataclasses.replace(sizes_for(quick=True, smoke=False), drain=args.jobs)
    run(args.dsn, sizes, results, rounds=args.rounds)
    print(results.summary())


if __name__ == "__main__":
    main()
