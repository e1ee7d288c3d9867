"""What a queue's max_depth costs an enqueue, against no limit and against the code before.

Every figure is taken inside one transaction that is rolled back, and the
live table is vacuumed after it (this server runs without autovacuum), so each
round starts from the same depth and no dead rows; the configurations alternate
over ``rounds`` in one run, on one connection, and the best round of each counts.
The single enqueues run all their rounds before the bulk ones: a rolled-back bulk
insert of 20,000 leaves the claim index sparse where the queue's keys are, which
VACUUM does not undo, and every later count would walk those pages.

Single enqueues (``--jobs`` calls of :func:`pgqueue.enqueue` per round):

- ``before``: the enqueue of the code before bounded queues: the same
  validation and hook points, then the plain ``INSERT`` it sent (kept here as
  ``BEFORE_INSERT``), which checks nothing;
- ``unlimited``: today's enqueue into a queue with no max_depth; ``before`` and
  ``unlimited`` alternate in chunks of 100 calls within one transaction;
- ``bounded_<depth>``: a queue with a max_depth far above what it holds
  (1,000,000), holding ``depth`` committed jobs: each check counts them, and the
  up to 100 uncommitted ones of its own transaction (each chunk of 100 calls is
  rolled back, and the table vacuumed, before the next).

Bulk: one :func:`pgqueue.enqueue_many` of ``--many`` jobs (20,000) into an empty
queue without a limit, and into the bounded queue at each depth.

Run: ``python -m benchmarks.backpressure [--jobs N] [--many N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import psycopg

import pgqueue
from pgqueue.producer import params
from pgqueue.producer.hooks import enqueue_scope
from pgqueue.producer.insert_steps import job_params
from pgqueue.producer.steps import Steps, run_steps

from .harness import DEFAULT_DSN, Results, insert_ready_jobs, scratch_database

TASK = "bench.noop_async"
CHUNK = 100
FAR = 1_000_000
DEPTHS = (1_000, 10_000)
# The single-enqueue statement the producer sent before bounded queues (the file
# sql/queries/job_insert_one.sql, header included: the server parses it too).
BEFORE_INSERT = """\
-- job_insert_one: insert one job without a unique key, dependencies or batch,
-- as a plain INSERT (no function call): the single-enqueue fast path. The row
-- is the one pgqueue.enqueue() builds; input was validated in Python
-- (run_at/delay and expires_at/ttl are never both given).
-- Parameters: task, args (JSON text), queue, priority, run_at, max_attempts,
--   delay_seconds, trace_context, expires_at, ttl_seconds, concurrency_key.
-- Fires the statement trigger: one NOTIFY for the queue, delivered at commit.
INSERT INTO pgqueue.jobs
    (queue, task, args, priority, run_at, max_attempts, trace_context, expires_at,
     concurrency_key)
VALUES (
    %(queue)s, %(task)s, %(args)s::jsonb, %(priority)s,
    COALESCE(%(run_at)s, now() + COALESCE(%(delay_seconds)s, 0) * interval '1 second'),
    %(max_attempts)s, %(trace_context)s,
    COALESCE(%(expires_at)s, now() + %(ttl_seconds)s * interval '1 second'),
    %(concurrency_key)s)
RETURNING id
"""


def _before_steps(job: params.NewJob) -> Steps:
    rows = yield BEFORE_INSERT, job_params(job)
    return rows[0][0]


def enqueue_before(conn: psycopg.Connection[Any], task: str, args: dict[str, Any],
                   queue: str) -> int:
    """pgqueue.enqueue as it was: validate, hook points, the plain INSERT."""
    job = params.new_job(task, args, queue=queue, trace_context=None)
    with enqueue_scope([job]) as scope:
        return scope.done(run_steps(conn, _before_steps(scope.jobs[0])))  # type: ignore[no-any-return]


def _timed(conn: psycopg.Connection[Any], work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    conn.rollback()
    conn.autocommit = True
    conn.execute("VACUUM pgqueue.jobs")
    conn.autocommit = False
    return elapsed


def _singles(conn: psycopg.Connection[Any], n: int, queue: str) -> float:
    """us per enqueue() into ``queue``, CHUNK calls per rolled-back transaction, so the
    queue holds its committed depth plus at most CHUNK of the caller's own jobs."""
    spent = 0.0
    for start in range(0, n, CHUNK):
        def work(start: int = start) -> None:
            for i in range(start, min(n, start + CHUNK)):
                pgqueue.enqueue(conn, TASK, {"n": i}, queue=queue)

        spent += _timed(conn, work)
    return spent / n * 1e6


def _paired(conn: psycopg.Connection[Any], n: int) -> tuple[float, float]:
    """``before`` and ``unlimited`` in alternating chunks of CHUNK calls in one
    transaction, so a busy moment of the machine hits both alike: us per call of each."""
    spent = [0.0, 0.0]

    def work() -> None:
        for start in range(0, n, CHUNK):
            calls: tuple[Callable[..., int], ...] = (enqueue_before, pgqueue.enqueue)
            for k, call in enumerate(calls):
                began = time.perf_counter()
                for i in range(start, min(n, start + CHUNK)):
                    call(conn, TASK, {"n": i}, queue="free")
                spent[k] += time.perf_counter() - began

    _timed(conn, work)
    return spent[0] / n * 1e6, spent[1] / n * 1e6


def _many(conn: psycopg.Connection[Any], n: int, queue: str) -> float:
    specs: list[pgqueue.JobSpec] = [{"task": TASK, "args": {"n": i}, "queue": queue}
                                    for i in range(n)]
    return _timed(conn, lambda: pgqueue.enqueue_many(conn, specs)) * 1e3


def run(server_dsn: str, results: Results, *, jobs: int = 2_000, many: int = 20_000,
        rounds: int = 5, depths: tuple[int, ...] = DEPTHS) -> None:
    with scratch_database(server_dsn, "backpressure") as dsn:
        for depth in depths:
            insert_ready_jobs(dsn, TASK, depth, queue=f"bounded_{depth}")
        with psycopg.connect(dsn) as conn:
            for depth in depths:
                pgqueue.set_max_depth(conn, f"bounded_{depth}", FAR)
            conn.commit()
            single: dict[str, list[float]] = {"before": [], "unlimited": []}
            bulk: dict[str, list[float]] = {"unlimited": []}
            for depth in depths:
                single[f"bounded_{depth}"], bulk[f"bounded_{depth}"] = [], []
            _paired(conn, CHUNK)  # warm both paths up
            for _ in range(rounds):  # the single enqueues first: the bulk ones bloat the index
                before, unlimited = _paired(conn, jobs)
                single["before"].append(before)
                single["unlimited"].append(unlimited)
                for depth in depths:
                    single[f"bounded_{depth}"].append(_singles(conn, jobs, f"bounded_{depth}"))
            for _ in range(rounds):
                bulk["unlimited"].append(_many(conn, many, "free"))
                for depth in depths:
                    bulk[f"bounded_{depth}"].append(_many(conn, many, f"bounded_{depth}"))
    base = min(single["before"])
    for name, values in single.items():
        results.add(f"backpressure_single_{name}", min(values), "us/call",
                    f"{jobs:,} enqueue() in 1 tx")
        results.add(f"backpressure_single_{name}_ratio", min(values) / base, "x",
                    "/ before, same run")
    base = min(bulk["unlimited"])
    for name, values in bulk.items():
        results.add(f"backpressure_many_{name}", min(values), "ms/call",
                    f"enqueue_many of {many:,}")
        results.add(f"backpressure_many_{name}_ratio", min(values) / base, "x",
                    "/ unlimited, same run")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--many", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--depths", default=",".join(map(str, DEPTHS)),
                        help="committed depths of the bounded queues, comma-separated")
    args = parser.parse_args(argv)
    results = Results(mode="backpressure")
    run(args.dsn, results, jobs=args.jobs, many=args.many, rounds=args.rounds,
        depths=tuple(int(d) for d in args.depths.split(",")))
    print(results.summary())


if __name__ == "__main__":
    main()
