"""Fair share across keys: a fair queue's claims take turns by concurrency_key.

Real workers and the claim itself. Jobs of the heavy key are always older than
the light key's, so that without fairness (priority, run_at, id) every light
job would wait for the whole heavy backlog: the assertions fail that.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from pgqueue._sql import query
from pgqueue.types import Job
from pgqueue.worker.config import ConfigError
from pgqueue.worker.key_rounds import KeyRounds
from tests.support import fetch, running_worker, wait_until


def registry() -> pgqueue.Registry:
    tasks = pgqueue.Registry()

    @tasks.task(name="f.work", queue="tenants")
    async def work() -> None: ...

    @tasks.task(name="f.capped", queue="tenants", concurrency_per_key=1)
    async def capped() -> None: ...

    return tasks


def insert(dsn: str, key: str | None, n: int, task: str = "f.work") -> None:
    """``n`` ready jobs of ``key`` in one statement (run_at in insertion order)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, concurrency_key, run_at) "
            "SELECT 'tenants', %s, '{}', %s, clock_timestamp() - interval '1 hour' "
            "FROM generate_series(1, %s)", [task, key, n])
        conn.execute("ANALYZE pgqueue.jobs")


def claim(dsn: str, rounds: KeyRounds | None, n: int,
          key_caps: dict[str, int] | None = None) -> list[Job]:
    fair, cursors = (None, None) if rounds is None else rounds.params()
    key_caps = key_caps or {}
    rows = fetch(dsn, query("job_claim"), {
        "queues": ["tenants"], "slots": [n], "bases": None, "strides": None,
        "fair": fair, "cursors": cursors, "tasks": ["f.work", "f.capped"], "limit": n,
        "worker_id": str(uuid.uuid4()), "key_tasks": list(key_caps),
        "key_caps": list(key_caps.values()), "async_commit": False})
    jobs = [Job(*row) for row in rows]
    if rounds is not None:
        rounds.record(jobs)
    return jobs


def test_a_light_key_starts_within_the_next_claim_behind_a_heavy_backlog(
        clean_db: str) -> None:
    insert(clean_db, "A", 100_000)
    insert(clean_db, "B", 10)
    # Without fairness the claim takes A's oldest jobs only.
    assert {j.concurrency_key for j in claim(clean_db, None, 20)} == {"A"}
    rounds = KeyRounds(["tenants"], {"tenants"})
    first = claim(clean_db, rounds, 20)
    assert Counter(j.concurrency_key for j in first) == {"A": 10, "B": 10}
    # B is done; A gets the whole claim (work-conserving).
    assert Counter(j.concurrency_key for j in claim(clean_db, rounds, 20)) == {"A": 20}


def test_claims_round_robin_across_many_keys_and_cover_them_all(clean_db: str) -> None:
    # 100 keys of 5 jobs each, and a heavy key older than all of them.
    insert(clean_db, "heavy", 1000)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, concurrency_key) "
            "SELECT 'tenants', 'f.work', '{}', 'k' || lpad(g::text, 3, '0') "
            "FROM generate_series(1, 100) g, generate_series(1, 5)")
    rounds = KeyRounds(["tenants"], {"tenants"})
    seen: Counter[str | None] = Counter()
    for _ in range(6):  # 6 claims of 20: each key at most once per claim
        jobs = claim(clean_db, rounds, 20)
        keys = Counter(j.concurrency_key for j in jobs)
        assert len(jobs) == 20 and max(keys.values()) == 1, keys
        seen.update(keys)
    # 101 keys, 120 jobs: every key got one before any got a second.
    assert len(seen) == 101 and max(seen.values()) == 2, seen


def test_jobs_without_a_key_and_per_key_caps_in_a_fair_queue(clean_db: str) -> None:
    insert(clean_db, None, 30)
    insert(clean_db, "A", 30, task="f.capped")
    insert(clean_db, "B", 30)
    rounds = KeyRounds(["tenants"], {"tenants"})
    jobs = claim(clean_db, rounds, 20, key_caps={"f.capped": 1})
    got = Counter(j.concurrency_key for j in jobs)
    # A's cap (1 running) holds; B's round fills the room; keyless jobs wait
    # for the rounds' leftovers, by age.
    assert got["A"] == 1 and got["B"] >= 9, got
    running = fetch(clean_db, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'running' "
                              "AND concurrency_key = 'A'")
    assert running == [(1,)]


def test_a_fair_worker_starts_a_light_tenant_while_a_heavy_one_has_a_backlog(
        clean_db: str) -> None:
    insert(clean_db, "A", 20_000)
    insert(clean_db, "B", 10)
    with running_worker(clean_db, registry(), concurrency=10,
                        queues=["tenants=fair"]) as worker:
        wait_until(lambda: sum(1 for e in worker.of(events.JobStarted)
                               if e.job.concurrency_key == "B") == 10,
                   timeout=120, message="B's 10 jobs started")
        started = list(worker.of(events.JobStarted))
    before = next(i for i, e in enumerate(started) if e.job.concurrency_key == "B")
    last = max(i for i, e in enumerate(started) if e.job.concurrency_key == "B")
    # B's first job was in the first claim, and all 10 within the first claims
    # (a claim holds up to 40 jobs here), not after A's 20,000.
    assert before < 40 and last < 200, (before, last)


@pytest.mark.parametrize("queues, message", [
    (["tenants=fair:fair"], "each at most once"),
    (["tenants=fare"], "or fair, each at most once"),
    ({"tenants": pgqueue.QueueSpec(fair="yes")},  # type: ignore[arg-type]
     "fair for queue 'tenants' must be True"),
])
def test_bad_fair_specs_are_refused(clean_db: str, queues: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pgqueue.Worker(registry(), dsn=clean_db, queues=queues)


def test_fair_specs_combine_with_slots_and_weights(clean_db: str) -> None:
    worker = pgqueue.Worker(registry(), dsn=clean_db,
                            queues=["tenants=10:w3:fair", "other=w1"])
    assert worker.config.fair_queues == {"tenants"}
    assert worker.config.queue_slots == {"tenants": 10}
    assert worker.config.queue_weights == {"tenants": 3, "other": 1}
