"""Weighted queues: how a worker's starts split, what the order costs, and the claim's
flatness as a backlog grows.

- ``split``: one worker (concurrency 50, no-op async jobs) on ``critical=w6,
  default=w3, low=w1`` with a backlog on every queue larger than the jobs
  counted; the share of each queue among the first N starts (its JobStarted
  events, in order), against 60/30/10 %.
- ``idle``: the same worker with ``critical`` empty: default and low should
  split 3:1 (75/25 %) and the worker drain as fast as with every queue busy.
- ``drain``: jobs/s of those first N starts, weighted against the default
  order (priority, run_at, id across the three queues), alternating rounds in
  one run, best of each.
- ``claim``: one claim of 50 jobs, committed, weighted and default order
  alternating, median of 100 each, against a backlog of 10,000 and of
  1,000,000 jobs on one of the three queues (``--quick``: 20,000); and the
  shared buffers one claim's statement reads on the freshly vacuumed table
  (EXPLAIN ANALYZE, BUFFERS, through auto_explain; the claim rolled back).

Run: ``python -m benchmarks.weights [--jobs N] [--rounds R] [--large N] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections import Counter
from functools import partial
from typing import Any

import psycopg

import pgqueue
from pgqueue import events
from pgqueue.worker.turns import QueueTurns

from .claims import PLAN_ROUNDS, claim_plan, claim_times
from .harness import (
    DEFAULT_DSN,
    Results,
    WorkerRun,
    scratch_database,
    verify_drained,
)

QUEUES = ("critical", "default", "low")
WEIGHTS = {"critical": 6, "default": 3, "low": 1}
SPECS = [f"{q}=w{w}" for q, w in WEIGHTS.items()]
CONCURRENCY = 50
CLAIM = 50


async def noop(n: int = 0) -> None:
    return None


tasks = pgqueue.Registry()
tasks.task(noop, name="bench.noop_async")


def _insert(dsn: str, per_queue: dict[str, int]) -> None:
    """Jobs interleaved across the queues (ids alternate), then VACUUM ANALYZE."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i, (queue, n) in enumerate(per_queue.items()):
            conn.execute(
                "INSERT INTO pgqueue.jobs (task, queue, args, run_at) "
                "SELECT 'bench.noop_async', %s, '{}', "
                "       now() - interval '1 hour' + (g * %s + %s) * interval '1 microsecond' "
                "FROM generate_series(1, %s) g", (queue, len(per_queue), i, n))
        conn.execute("VACUUM ANALYZE pgqueue.jobs")


def _starts(server_dsn: str, label: str, per_queue: dict[str, int], n: int,
            **options: Any) -> tuple[Counter[str], float]:
    """The queues of a worker's first ``n`` starts, and its jobs/s over them."""
    with scratch_database(server_dsn, f"weights_{label}") as dsn:
        _insert(dsn, per_queue)
        run = WorkerRun(tasks, dsn, target=n, concurrency=CONCURRENCY, **options)
        order: list[str] = []

        def started(event: events.Event) -> None:
            if isinstance(event, events.JobStarted) and len(order) < n:
                order.append(event.job.queue)

        run.worker.subscribe(started)
        run.start()
        try:
            run.wait_done(120 + n / 50)
        finally:
            run.stop()
        total = sum(per_queue.values())
        if n >= total:
            verify_drained(dsn, total)
        return Counter(order), run.jobs_per_second()


def _claim_params(bases: list[float] | None, strides: list[float] | None
                  ) -> dict[str, Any]:
    return {"queues": list(QUEUES), "slots": [CLAIM] * 3, "bases": bases,
            "strides": strides, "fair": None, "cursors": None,
            "tasks": ["bench.noop_async"], "limit": CLAIM,
            "worker_id": str(uuid.uuid4()), "key_tasks": [], "key_caps": [],
            "async_commit": False}


def run(server_dsn: str, results: Results, *, jobs: int = 10_000, rounds: int = 2,
        large: int = 1_000_000) -> None:
    backlog = dict.fromkeys(QUEUES, jobs * 7 // 10 + CONCURRENCY * 4)
    split: Counter[str] = Counter()
    rates = {"weighted": 0.0, "priority": 0.0}
    for _ in range(rounds):
        split, rate = _starts(server_dsn, "split", backlog, jobs, queues=SPECS)
        rates["weighted"] = max(rates["weighted"], rate)
        _, rate = _starts(server_dsn, "plain", backlog, jobs, queues=list(QUEUES))
        rates["priority"] = max(rates["priority"], rate)
    for queue in QUEUES:
        share = split[queue] / jobs * 100
        results.add(f"weights_share_{queue}", share, "%",
                    f"of {jobs:,} starts, weight {WEIGHTS[queue]} of 10 "
                    f"({WEIGHTS[queue] * 10} % due)")
    worst = max(abs(split[q] / jobs * 100 - WEIGHTS[q] * 10) for q in QUEUES)
    results.add("weights_share_worst_error", worst, "points", "largest |share - due|")
    idle_backlog = {"default": jobs * 8 // 10 + CONCURRENCY * 4,
                    "low": jobs * 3 // 10 + CONCURRENCY * 4}
    idle, idle_rate = _starts(server_dsn, "idle", idle_backlog, jobs,
                              queues=[*SPECS[:1], *SPECS[1:]])
    results.add("weights_idle_share_default", idle["default"] / jobs * 100, "%",
                f"of {jobs:,} starts, critical empty (75 % due)")
    results.add("weights_idle_share_low", idle["low"] / jobs * 100, "%", "(25 % due)")
    results.add("weights_idle_drain_c50", idle_rate, "jobs/s", "critical empty")
    results.add("weights_drain_weighted_c50", rates["weighted"], "jobs/s",
                f"first {jobs:,} starts, best of {rounds}")
    results.add("weights_drain_priority_c50", rates["priority"], "jobs/s",
                "the same, default order")
    results.add("weights_drain_ratio", rates["weighted"] / rates["priority"], "x",
                "weighted / default order, same run")
    _claims(server_dsn, results, large=large)


def _claims(server_dsn: str, results: Results, *, large: int, rounds: int = 100) -> None:
    turns = QueueTurns(list(QUEUES), "weighted", WEIGHTS)
    orders: dict[str, tuple[list[float] | None, list[float] | None]] = {
        "weighted": turns.turns(CLAIM), "priority": (None, None)}
    small = CLAIM * rounds * 2
    for label, size in (("small", small), ("large", large)):
        with scratch_database(server_dsn, f"weights_claim_{label}") as dsn:
            _insert(dsn, {"critical": small, "default": small, "low": size})
            # First, on the freshly vacuumed table: what one claim reads.
            for order, (bases, strides) in orders.items():
                buffers, millis = claim_plan(dsn, partial(_claim_params, bases, strides))
                results.add(f"weights_claim_{order}_{label}_buffers", float(buffers),
                            "buffers", f"shared buffers the claim's statement reads, "
                            f"low's backlog {size:,}")
                results.add(f"weights_claim_{order}_{label}_statement", millis * 1000, "us",
                            f"the claim's statement alone (auto_explain), median of "
                            f"{PLAN_ROUNDS}")
            variants = {order: (partial(_claim_params, bases, strides), None)
                        for order, (bases, strides) in orders.items()}
            for order, seconds in claim_times(dsn, variants, rounds, CLAIM).items():
                results.add(f"weights_claim_{order}_{label}", seconds * 1e6, "us",
                            f"claim of {CLAIM} (committed), low's backlog {size:,}, "
                            f"median of {rounds}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--jobs", type=int, default=None,
                        help="starts counted [default: 10,000; --quick: 1,000]")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds [default: 2; --quick: 1]")
    parser.add_argument("--large", type=int, default=None,
                        help="the large backlog [default: 1,000,000; --quick: 20,000]")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args(argv)
    quick = args.quick
    results = Results(mode="weights-quick" if quick else "weights")
    run(args.dsn, results,
        jobs=args.jobs or (1_000 if quick else 10_000),
        rounds=args.rounds or (1 if quick else 2),
        large=args.large or (20_000 if quick else 1_000_000))
    print(results.summary())
    print("load average at start", results.load_at_start, "at end", os.getloadavg())


if __name__ == "__main__":
    main()
