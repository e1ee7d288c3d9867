"""What tags, meta, throttle and debounce cost a single enqueue, against a plain one.

One connection, one run: the configurations below alternate in chunks of 100
calls, each chunk its own transaction, rolled back (so a throttled or debounced
key's lock is released as in real use, every round starts from the same tables,
and no commit's wait for the disk, the same for all, hides the differences),
over ``rounds`` rounds; the live table is vacuumed after each round (this server
runs without autovacuum), and the best round of each configuration counts.
Every chunk's ids are checked: a new id per call for the new-key
configurations, the holder's for the two one-key ones. History holds ``--history`` finished
jobs with unique keys first, so the throttle's look-up in history walks a real
index.

- ``plain``: ``enqueue(conn, task, args)``;
- ``tags_meta``: the same with two tags and a small meta object;
- ``unique_key``: a new plain unique key per call (the keyed path of before);
- ``unique_for_new``: a new key per call, ``unique_for=600``: the lock, the look
  over live jobs and history, the insert;
- ``unique_for_held``: one key whose job is in history: the lock and the look,
  no insert (the id of the holder is returned);
- ``debounce_new``: a new key per call, ``debounce=30``: the lock, an UPDATE that
  finds nothing, the insert;
- ``debounce_push``: one key whose job is pending: each call pushes it out (one
  UPDATE, with ``on_conflict="replace"``).

Run: ``python -m benchmarks.key_modes [--jobs N] [--rounds R] [--history N]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import psycopg

import pgqueue

from .harness import DEFAULT_DSN, BenchmarkError, Results, scratch_database

TASK = "bench.noop_async"
CHUNK = 100
TAGS = ["customer:42", "import"]
META = {"source": "bench", "batch": 7}

Call = Callable[[psycopg.Connection[Any], int], int]

CONFIGS: dict[str, Call] = {
    "plain": lambda c, i: pgqueue.enqueue(c, TASK, {"n": i}),
    "tags_meta": lambda c, i: pgqueue.enqueue(c, TASK, {"n": i}, tags=TAGS, meta=META),
    "unique_key": lambda c, i: pgqueue.enqueue(c, TASK, {"n": i}, unique_key=f"u-{i}"),
    "unique_for_new": lambda c, i: pgqueue.enqueue(c, TASK, {"n": i}, unique_key=f"t-{i}",
                                                   unique_for=600),
    "unique_for_held": lambda c, i: pgqueue.enqueue(c, TASK, {"n": i}, unique_key="held",
                                                    unique_for=600),
    "debounce_new": lambda c, i: pgqueue.enqueue(c, TASK, {"n": i}, unique_key=f"d-{i}",
                                                 debounce=30),
    "debounce_push": lambda c, i: pgqueue.enqueue(c, TASK, {"n": i}, unique_key="push",
                                                  debounce=30, on_conflict="replace"),
}


def _prepare(dsn: str, history: int) -> dict[str, int]:
    """History of keyed finished jobs; 'held' finished just now, 'push' pending."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.finished_jobs (id, queue, task, args, priority, state, attempt,"
            " max_attempts, run_at, created_at, finished_at, unique_key, errors)"
            " SELECT nextval('pgqueue.jobs_id_seq'), 'default', %s, '{}', 0, 'succeeded', 1, 5,"
            " now() - g * interval '1 s', now() - g * interval '1 s', now() - g * interval '1 s',"
            " 'old-' || g, '[]' FROM generate_series(1, %s) g", [TASK, history])
        held = pgqueue.enqueue(conn, TASK, unique_key="held")
        conn.execute("WITH gone AS (DELETE FROM pgqueue.jobs j WHERE j.id = %s RETURNING j)"
                     " INSERT INTO pgqueue.finished_jobs SELECT (pgqueue.finished_row("
                     "g.j, 'succeeded', NULL, '[]')).* FROM gone g", [held])
        push = pgqueue.enqueue(conn, TASK, unique_key="push", debounce=30)
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
        conn.execute("VACUUM ANALYZE pgqueue.finished_jobs")
    return {"unique_for_held": held, "debounce_push": push}


def _round(conn: psycopg.Connection[Any], jobs: int, offset: int,
           holders: dict[str, int]) -> dict[str, float]:
    """us per call of each configuration, in alternating rolled-back chunks of CHUNK calls."""
    spent = dict.fromkeys(CONFIGS, 0.0)
    for start in range(offset, offset + jobs, CHUNK):
        for name, call in CONFIGS.items():
            calls = range(start, min(offset + jobs, start + CHUNK))
            began = time.perf_counter()
            ids = [call(conn, i) for i in calls]
            spent[name] += time.perf_counter() - began
            conn.rollback()
            _check(name, ids, holders)
    conn.autocommit = True
    conn.execute("VACUUM pgqueue.jobs")
    conn.autocommit = False
    return {name: seconds / jobs * 1e6 for name, seconds in spent.items()}


def _check(name: str, ids: list[int], holders: dict[str, int]) -> None:
    """A new job per call, or the holder's id every time for the one-key configurations."""
    expected = holders.get(name)
    if expected is not None and set(ids) != {expected}:
        raise BenchmarkError(f"{name}: expected the holder {expected}, got {set(ids)}")
    if expected is None and len(set(ids)) != len(ids):
        raise BenchmarkError(f"{name}: {len(ids)} calls made {len(set(ids))} jobs")


def run(server_dsn: str, results: Results, *, jobs: int = 2_000, rounds: int = 5,
        history: int = 100_000) -> None:
    with scratch_database(server_dsn, "key_modes") as dsn:
        holders = _prepare(dsn, history)
        with psycopg.connect(dsn) as conn:
            _round(conn, CHUNK, 0, holders)  # warm every path up
            best: dict[str, list[float]] = {name: [] for name in CONFIGS}
            for _ in range(rounds):
                for name, us in _round(conn, jobs, 0, holders).items():
                    best[name].append(us)
    base = min(best["plain"])
    for name, values in best.items():
        results.add(f"key_modes_{name}", min(values), "us/call", f"{jobs:,} enqueue() per round")
        if name != "plain":
            results.add(f"key_modes_{name}_ratio", min(values) / base, "x", "/ plain, same run")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--jobs", type=int, default=2_000, help="calls per configuration "
                                                               "and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--history", type=int, default=100_000,
                        help="finished jobs with unique keys in history")
    args = parser.parse_args(argv)
    results = Results(mode="key_modes")
    run(args.dsn, results, jobs=args.jobs, rounds=args.rounds, history=args.history)
    print(results.summary())


if __name__ == "__main__":
    main()
