"""The claim when every statement must name its queue: the shape a table
distributed by queue needs (see "Beyond one database" in benchmarks/README.md).

A worker serving N queues claims today with one statement over all of them
(``across``). On a database whose jobs are distributed by queue, a statement
that touches one shard names exactly one queue, so the worker would claim queue
by queue (``named``). For N = 1, 10 and 100 queues with a backlog spread evenly
over them (100,000 ready jobs; ``--quick``: 20,000):

- one committed claim of 50, ``across`` and ``named`` (the next queue in turn)
  alternating, median of 100 each, and the ratio;
- the claim's own statement (auto_explain, claims rolled back, median of 21);
- a ``named`` claim of a queue with nothing ready: what each empty queue costs
  a worker that sweeps its queues one statement at a time (an idle sweep of N
  queues is N such statements where ``across`` needs one).

Run: ``python -m benchmarks.queue_named [--jobs N] [--quick]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
import uuid
from typing import Any

import psycopg

from pgqueue._sql import query

from .claims import PLAN_ROUNDS, claim_plan, claim_times
from .harness import DEFAULT_DSN, Results, scratch_database

CLAIM = 50
ROUNDS = 100
QUEUE_COUNTS = (1, 10, 100)
TASK = "bench.noop"


def _insert(dsn: str, n: int, queues: int) -> None:
    """``n`` ready jobs dealt over queues q1..q<queues> in age order, then VACUUM ANALYZE."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, run_at) "
            "SELECT 'q' || (1 + g %% %s), %s, '{}', "
            "       now() - interval '1 hour' + g * interval '1 microsecond' "
            "FROM generate_series(1, %s) g", (queues, TASK, n))
        conn.execute("VACUUM ANALYZE pgqueue.jobs")


def _params(queues: list[str]) -> dict[str, Any]:
    return {"queues": queues, "slots": [CLAIM] * len(queues), "bases": None,
            "strides": None, "fair": None, "cursors": None, "tasks": [TASK], "limit": CLAIM,
            "worker_id": str(uuid.uuid4()), "key_tasks": [], "key_caps": [],
            "async_commit": False}


def _empty_claim_seconds(dsn: str) -> float:
    """Median seconds of a committed claim naming a queue with nothing in it."""
    params = _params(["empty"])
    times = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(ROUNDS):
            started = time.perf_counter()
            conn.execute(query("job_claim"), params).fetchall()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def _measure(dsn: str, results: Results, queues: int, jobs: int) -> None:
    names = [f"q{i}" for i in range(1, queues + 1)]
    turn = itertools.cycle(names)
    variants = {"across": (lambda: _params(names), None),
                "named": (lambda: _params([next(turn)]), None)}
    plans = {"across": claim_plan(dsn, lambda: _params(names)),
             "named": claim_plan(dsn, lambda: _params(names[:1]))}
    times = claim_times(dsn, variants, ROUNDS, CLAIM)
    note = f"{jobs:,} ready jobs over {queues} queue(s)"
    label = f"q{queues}"
    for name in ("across", "named"):
        results.add(f"queue_named_claim_{name}_{label}", times[name] * 1e6, "us",
                    f"claim of {CLAIM} (committed), {note}, median of {ROUNDS}")
        results.add(f"queue_named_claim_{name}_{label}_statement", plans[name][1] * 1000,
                    "us", f"the claim's statement (auto_explain), median of {PLAN_ROUNDS}")
    results.add(f"queue_named_ratio_{label}", times["named"] / times["across"], "x",
                "named / across, same run")
    results.add(f"queue_named_empty_claim_{label}", _empty_claim_seconds(dsn) * 1e6, "us",
                f"a claim naming an empty queue, {note}, median of {ROUNDS}")


def run(server_dsn: str, results: Results, *, jobs: int = 100_000) -> None:
    jobs = max(jobs, 2 * ROUNDS * CLAIM * 2)  # every claim of both variants fills up
    for queues in QUEUE_COUNTS:
        with scratch_database(server_dsn, f"queue_named_{queues}") as dsn:
            _insert(dsn, jobs, queues)
            _measure(dsn, results, queues, jobs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--jobs", type=int, default=None,
                        help="the backlog [default: 100,000; --quick: 20,000]")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args(argv)
    results = Results(mode="queue-named-quick" if args.quick else "queue-named")
    run(args.dsn, results, jobs=args.jobs or (20_000 if args.quick else 100_000))
    print(results.summary())
    print("load average at start", results.load_at_start, "at end", os.getloadavg())


if __name__ == "__main__":
    main()
