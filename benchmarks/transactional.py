"""Exactly-once database effects: what ``ctx.transaction()`` costs a job, and that
a handler without it pays nothing.

One worker in process (concurrency 50) drains N ready jobs; the figure is the
steady rate: the last 80 % of the jobs over the time from the first fifth's
last JobFinished to the N-th (the handler pool grows one connection at a time
while the first jobs run; so the plain case is timed the same way). Cases, alternated
round by round in one run (best round of each kept):

- ``plain_async``: a no-op async handler (the baseline);
- ``tx_async_empty``: an async handler that opens ``ctx.transaction()`` and runs
  nothing in it: what pgqueue adds (a pooled connection, the fenced outcome on
  it and a commit per job, instead of a share of the completer's batches);
- ``tx_async_insert``: the same with one INSERT in the transaction;
- ``own_async_insert``: the INSERT committed on a connection of the handler's
  own, the outcome by the completer (what such a handler does without it);
- ``tx_sync_empty``: the sync twin of ``tx_async_empty``, on worker threads.

``--baseline TREE`` (a checkout or an export of pgqueue before this feature)
adds ``plain_async`` run by TREE's code in a subprocess, alternated with this
tree's, run the same way: the plain drain before and after.

Run: ``python -m benchmarks.transactional [--jobs N] [--rounds R] [--quick]
[--baseline TREE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

import pgqueue

from .harness import DEFAULT_DSN, WorkerRun, insert_ready_jobs, scratch_database, verify_drained

CONCURRENCY = 50
ROOT = Path(__file__).resolve().parent.parent
INSERT = "INSERT INTO bench_effects (job_id) VALUES (%s)"
_own: dict[str, psycopg.AsyncConnection[Any]] = {}

tasks = pgqueue.Registry()


@tasks.task(name="bench.plain_async")
async def plain_async(n: int = 0) -> None:
    return None


@tasks.task(name="bench.tx_async_empty")
async def tx_async_empty(ctx: pgqueue.JobContext, n: int = 0) -> None:
    async with ctx.transaction():
        pass


@tasks.task(name="bench.tx_async_insert")
async def tx_async_insert(ctx: pgqueue.JobContext, n: int = 0) -> None:
    async with ctx.transaction() as conn:
        await conn.execute(INSERT, [ctx.id])


@tasks.task(name="bench.own_async_insert")
async def own_async_insert(ctx: pgqueue.JobContext, n: int = 0) -> None:
    # One autocommit connection shared by the handlers, as an application's pool
    # would lend them; psycopg serialises its statements.
    conn = _own.get("conn")
    if conn is None:
        conn = _own["conn"] = await psycopg.AsyncConnection.connect(
            os.environ["PGQUEUE_BENCH_EFFECTS_DSN"], autocommit=True)
    await conn.execute(INSERT, [ctx.id])


@tasks.task(name="bench.tx_sync_empty")
def tx_sync_empty(ctx: pgqueue.JobContext, n: int = 0) -> None:
    with ctx.transaction():
        pass


CASES = ["plain_async", "tx_async_empty", "tx_async_insert", "own_async_insert",
         "tx_sync_empty"]

# Run in a subprocess on a tree's own code (this one or --baseline's): only what
# both trees have (benchmarks.harness, a plain no-op task).
_CHILD = """
import sys, time, pgqueue
from benchmarks.harness import WorkerRun, insert_ready_jobs, scratch_database
tasks = pgqueue.Registry()
async def noop(n: int = 0) -> None:
    return None
tasks.task(noop, name="bench.noop_async")
with scratch_database(sys.argv[1], "tx_base") as dsn:
    insert_ready_jobs(dsn, "bench.noop_async", int(sys.argv[2]))
    n = int(sys.argv[2])
    run = WorkerRun(tasks, dsn, target=n, concurrency=int(sys.argv[3]))
    marks = []
    run.on_finish = lambda e: marks.append(time.perf_counter()) if run.finished == n // 5 else None
    run.start()
    try:
        run.wait_done(300)
    finally:
        run.stop()
    print((n - n // 5) / (run.target_finish - marks[0]))
"""


def drain(server_dsn: str, case: str, n: int) -> float:
    """Jobs per second of one worker draining ``n`` jobs of ``case``."""
    with scratch_database(server_dsn, "tx") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_effects (job_id bigint PRIMARY KEY)")
        os.environ["PGQUEUE_BENCH_EFFECTS_DSN"] = dsn
        insert_ready_jobs(dsn, f"bench.{case}", n)
        run = WorkerRun(tasks, dsn, target=n, concurrency=CONCURRENCY)
        warm = n // 5
        marks: list[float] = []

        def finished(event: Any) -> None:
            if run.finished == warm:
                marks.append(time.perf_counter())

        run.on_finish = finished
        run.start()
        try:
            run.wait_done(60 + n / 50)
        finally:
            run.stop()
            own = _own.pop("conn", None)
            if own is not None:  # its loop is gone: close it at the libpq level
                own.pgconn.finish()
        verify_drained(dsn, n)
        if run.not_succeeded:
            raise RuntimeError(f"{run.not_succeeded} jobs of {case} did not succeed")
        if case.endswith("insert"):
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM bench_effects").fetchone()
            assert row is not None and row[0] == n, (case, row)
        assert run.target_finish is not None and marks
        return (n - warm) / (run.target_finish - marks[0])


def drain_tree(server_dsn: str, tree: Path, n: int) -> float:
    """``plain_async`` (a no-op) drained by ``tree``'s pgqueue, in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _CHILD, server_dsn, str(n), str(CONCURRENCY)],
                         cwd=tree, env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transactional")
    parser.add_argument("--dsn", default=os.environ.get("PGQUEUE_BENCH_DSN", DEFAULT_DSN))
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a tree of pgqueue without ctx.transaction(), for plain_async")
    args = parser.parse_args(argv)
    n = args.jobs or (3000 if args.quick else 20_000)
    rounds = args.rounds or (3 if args.quick else 5)
    best: dict[str, float] = {}
    trees = [] if args.baseline is None else [("base_plain_async", args.baseline.resolve()),
                                             ("this_plain_async", ROOT)]
    for r in range(rounds):
        for case in CASES:
            rate = drain(args.dsn, case, n)
            best[case] = max(best.get(case, 0.0), rate)
            print(f"round {r + 1} {case} {rate:.0f} jobs/s", flush=True)
        for name, tree in trees:
            rate = drain_tree(args.dsn, tree, n)
            best[name] = max(best.get(name, 0.0), rate)
            print(f"round {r + 1} {name} {rate:.0f} jobs/s", flush=True)
    base = best["plain_async"]
    print(f"\n{n:,} jobs, concurrency {CONCURRENCY}, best of {rounds} rounds "
          f"(load {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    print(f"{'case':<20}{'jobs/s':>10}{'us/job':>10}{'+us/job':>10}{'ratio':>8}")
    for case, rate in best.items():
        us = 1e6 / rate
        print(f"{case:<20}{rate:>10.0f}{us:>10.0f}{us - 1e6 / base:>10.0f}"
              f"{rate / base:>8.2f}")
    if trees:
        print(f"plain drain, this tree / baseline: "
              f"{best['this_plain_async'] / best['base_plain_async']:.2f}")
    print(json.dumps({k: round(v, 1) for k, v in best.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
