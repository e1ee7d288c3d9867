"""What dependencies and per-key caps cost: enqueue and drain against plain jobs.

One worker in process drains N no-op async jobs at concurrency 50 in each
configuration; the configurations alternate over ``rounds`` in one run and the
best round of each counts, so slow moments of the machine hit all alike:

- ``plain``: independent jobs;
- ``chains``: N/5 chains of 5 (``pgqueue.chain``): every job but the first of
  a chain waits blocked, and each finish settles its dependent (one
  ``after_finish`` statement per batch of outcomes) and wakes the queue;
- ``keys``: a task with ``concurrency_per_key=1`` and jobs over 1,000 keys
  (the cap rarely binds): every claim takes an advisory lock per key and
  counts the running jobs of each;
- ``keys_binding``: the same cap over 10 keys, so at most 10 jobs run at once
  although 50 slots are free.

Enqueue figures, per call, each call its own transaction: ``enqueue_many`` of
5 plain jobs against ``chain`` of 5, and ``enqueue`` against ``enqueue`` with
``depends_on`` naming a queued job.

Run: ``python -m benchmarks.flow [--jobs N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import time

import psycopg

import pgqueue

from .harness import (
    DEFAULT_DSN,
    BenchmarkError,
    Results,
    WorkerRun,
    scratch_database,
    verify_drained,
)

CHAIN_LENGTH = 5


async def noop() -> None:
    return None


tasks = pgqueue.Registry()
tasks.task(noop, name="bench.noop_async")
tasks.task(noop, name="bench.noop_key1", concurrency_per_key=1)

CONFIGS = ("plain", "chains", "keys", "keys_binding")


def _enqueue(dsn: str, config: str, n: int) -> None:
    """Enqueue the jobs of ``config`` (committed), then VACUUM ANALYZE."""
    with psycopg.connect(dsn) as conn:
        if config == "chains":
            for _ in range(n // CHAIN_LENGTH):
                pgqueue.chain(conn, [{"task": "bench.noop_async"}] * CHAIN_LENGTH)
        elif config.startswith("keys"):
            keys = 10 if config == "keys_binding" else 1000
            pgqueue.enqueue_many(conn, [{"task": "bench.noop_key1",
                                         "concurrency_key": f"k{i % keys}"}
                                        for i in range(n)])
        else:
            pgqueue.enqueue_many(conn, [{"task": "bench.noop_async"}] * n)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE pgqueue.jobs")


def _enqueue_costs(server_dsn: str, calls: int, rounds: int) -> dict[str, float]:
    """Microseconds per call, best of ``rounds``, each call its own transaction:
    enqueue_many of 5 plain jobs vs chain of 5; enqueue vs enqueue(depends_on=[a
    queued job])."""
    five = [{"task": "bench.noop_async"}] * CHAIN_LENGTH
    best: dict[str, float] = {}
    with scratch_database(server_dsn, "flow_enqueue") as dsn, psycopg.connect(dsn) as conn:
        root = pgqueue.enqueue(conn, "bench.noop_async", delay=3600)
        conn.commit()
        ways = {
            "many5": lambda: pgqueue.enqueue_many(conn, five),  # type: ignore[arg-type]
            "chain5": lambda: pgqueue.chain(conn, five),  # type: ignore[arg-type]
            "single": lambda: pgqueue.enqueue(conn, "bench.noop_async"),
            "single_dep": lambda: pgqueue.enqueue(conn, "bench.noop_async",
                                                  depends_on=[root]),
        }
        for _ in range(rounds):
            for name, call in ways.items():
                began = time.perf_counter()
                for _ in range(calls):
                    call()
                    conn.commit()
                micros = (time.perf_counter() - began) / calls * 1e6
                best[name] = min(best.get(name, micros), micros)
    return best


def _drain(server_dsn: str, config: str, n: int) -> float:
    with scratch_database(server_dsn, f"flow_{config}") as dsn:
        _enqueue(dsn, config, n)
        run = WorkerRun(tasks, dsn, target=n, concurrency=50)
        run.start()
        try:
            run.wait_done(120 + n / 50)
        finally:
            run.stop()
        verify_drained(dsn, n)
        if run.not_succeeded:
            raise BenchmarkError(f"{run.not_succeeded} jobs did not succeed")
        return run.jobs_per_second()


def run(server_dsn: str, n: int, results: Results, rounds: int = 2) -> None:
    n -= n % CHAIN_LENGTH
    drain = dict.fromkeys(CONFIGS, 0.0)
    for _ in range(rounds):
        for config in CONFIGS:
            drain[config] = max(drain[config], _drain(server_dsn, config, n))
    costs = _enqueue_costs(server_dsn, 500, rounds)
    results.add("flow_enqueue_many5_us", costs["many5"], "us/call",
                f"enqueue_many of {CHAIN_LENGTH} plain jobs + commit")
    results.add("flow_enqueue_chain5_us", costs["chain5"], "us/call",
                f"chain of {CHAIN_LENGTH} + commit")
    results.add("flow_enqueue_single_us", costs["single"], "us/call", "enqueue + commit")
    results.add("flow_enqueue_single_dep_us", costs["single_dep"], "us/call",
                "enqueue(depends_on=[a queued job]) + commit")
    results.add("flow_drain_plain_c50", drain["plain"], "jobs/s", f"{n:,} independent jobs")
    notes = {"chains": f"{n // CHAIN_LENGTH:,} chains of {CHAIN_LENGTH}",
             "keys": "concurrency_per_key=1, 1,000 keys",
             "keys_binding": "concurrency_per_key=1, 10 keys (at most 10 running)"}
    for config, note in notes.items():
        results.add(f"flow_drain_{config}_c50", drain[config], "jobs/s", note)
        results.add(f"flow_drain_{config}_ratio", drain[config] / drain["plain"], "x",
                    f"{config} / plain, same run")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    results = Results(mode="flow")
    run(args.dsn, args.jobs, results, rounds=args.rounds)
    print(results.summary())


if __name__ == "__main__":
    main()
