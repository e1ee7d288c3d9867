"""Throttle and debounce under racing producers: threads of this process and
separate processes enqueue the same keys at once.

- Throttle: a worker runs every job as soon as it commits, so a key's job is
  often already in history when the next producer looks; each key must still
  end with exactly one job (live or finished), and every producer must have
  been given its id.
- Debounce: no worker; every producer pushes the same pending job, so each key
  ends with exactly one job, which every producer was given.

Each round starts on a barrier shared by all producers, and each enqueue holds
its transaction open a moment before committing, so the producers overlap.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import threading
from typing import Any

import psycopg

import pgqueue
from tests.support import fetch, running_worker, scalar, wait_until

THREADS = 6
PROCESSES = 3
ROUNDS = 12
CALLS = 3  # enqueues of the round's key per producer and round


def produce(dsn: str, seed: int, barrier: Any, mode: str) -> list[tuple[str, int]]:
    """Enqueue each round's key CALLS times, each in its own transaction."""
    rng = random.Random(seed)
    given = []
    with psycopg.connect(dsn) as conn:
        for r in range(ROUNDS):
            barrier.wait(timeout=120)
            key = f"{mode}-{r}"
            for n in range(CALLS):
                if mode == "throttle":
                    job_id = pgqueue.enqueue(conn, "race.noop", unique_key=key, unique_for=600)
                else:
                    job_id = pgqueue.enqueue(conn, "race.noop", {"by": seed, "n": n},
                                             unique_key=key, debounce=600,
                                             on_conflict="replace", tags=[f"p{seed}"])
                conn.execute("SELECT pg_sleep(%s)", [rng.random() * 0.003])
                conn.commit()
                given.append((key, job_id))
    return given


def _produce_in_child(dsn: str, seed: int, barrier: Any, mode: str, out: Any) -> None:
    out.put(produce(dsn, seed, barrier, mode))


def race(dsn: str, mode: str) -> list[tuple[str, int]]:
    """Run THREADS threads and PROCESSES processes of :func:`produce`; every id given."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(THREADS + PROCESSES), ctx.Queue()
    children = [ctx.Process(target=_produce_in_child, args=(dsn, 100 + i, barrier, mode, out))
                for i in range(PROCESSES)]
    for child in children:
        child.start()
    results: list[list[tuple[str, int]]] = []
    threads = [threading.Thread(target=lambda i=i: results.append(produce(dsn, i, barrier,
                                                                          mode)))
               for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    results.extend(out.get(timeout=300) for _ in children)
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert len(results) == THREADS + PROCESSES, "a producer failed"
    return [pair for result in results for pair in result]


def jobs_by_key(dsn: str, prefix: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for key, job_id in fetch(dsn, "SELECT unique_key, id FROM pgqueue.jobs "
                                  "WHERE unique_key LIKE %(p)s UNION ALL "
                                  "SELECT unique_key, id FROM pgqueue.finished_jobs "
                                  "WHERE unique_key LIKE %(p)s", {"p": prefix + "-%"}):
        found.setdefault(key, []).append(job_id)
    return found


def test_racing_throttled_producers_make_one_job_per_key_and_window(clean_db: str) -> None:
    registry = pgqueue.Registry()

    @registry.task(name="race.noop")
    async def noop() -> None:
        await asyncio.sleep(0)

    with running_worker(clean_db, registry, concurrency=8):
        given = race(clean_db, "throttle")
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0,
                   timeout=120, message="the worker to run every job")
    made = jobs_by_key(clean_db, "throttle")
    assert sorted(made) == sorted(f"throttle-{r}" for r in range(ROUNDS))
    assert all(len(ids) == 1 for ids in made.values()), made
    assert len(given) == (THREADS + PROCESSES) * ROUNDS * CALLS
    assert all(made[key] == [job_id] for key, job_id in given)
    # Every key's one job ran: later producers of its round found it in history.
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs "
                            "WHERE unique_key LIKE 'throttle-%'") == ROUNDS


def test_racing_debounced_producers_push_one_pending_job_per_key(clean_db: str) -> None:
    given = race(clean_db, "debounce")
    made = jobs_by_key(clean_db, "debounce")
    assert sorted(made) == sorted(f"debounce-{r}" for r in range(ROUNDS))
    assert all(len(ids) == 1 for ids in made.values()), made
    assert all(made[key] == [job_id] for key, job_id in given)
    # Each pending job holds what the last of its producers sent (replace), due 600 s
    # after that producer's transaction began.
    rows = fetch(clean_db, "SELECT args, tags, run_at - now() > interval '590 s' "
                           "FROM pgqueue.jobs WHERE unique_key LIKE 'debounce-%'")
    assert len(rows) == ROUNDS
    assert all(tags == [f"p{args['by']}"] and args["n"] in range(CALLS) and due
               for args, tags, due in rows), rows
