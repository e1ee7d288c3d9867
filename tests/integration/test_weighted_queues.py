"""Weighted and strict queue orders, with real workers and the claim itself.

A worker's starts are read from its JobStarted events, in the order it started
the jobs. The jobs of all queues are enqueued interleaved, with equal
priorities, so that without weights the claim (priority, run_at, id across
queues) would start them about 1:1:1: the tolerances below fail that.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from pgqueue._sql import query
from pgqueue.worker.config import ConfigError
from pgqueue.worker.turns import QueueTurns
from tests.support import Inflight, cli_runner, fetch, running_worker, wait_until

QUEUES = ("critical", "default", "low")


def registry(queues: tuple[str, ...] = QUEUES) -> pgqueue.Registry:
    tasks = pgqueue.Registry()
    for queue in queues:
        @tasks.task(name=f"w.{queue}", queue=queue)
        async def work() -> None: ...
    return tasks


def enqueue_interleaved(dsn: str, per_queue: dict[str, int], **options: Any) -> None:
    """Round-robin over the queues, so ids and run_at alternate between them."""
    specs: list[dict[str, Any]] = []
    left = dict(per_queue)
    while any(left.values()):
        for queue, n in left.items():
            if n:
                specs.append({"task": f"w.{queue}", "queue": queue, **options})
                left[queue] = n - 1
    with psycopg.connect(dsn) as conn:
        pgqueue.enqueue_many(conn, specs)


def starts(dsn: str, tasks: pgqueue.Registry, count: int, **options: Any) -> list[str]:
    """The queues of a worker's first ``count`` starts."""
    with running_worker(dsn, tasks, **options) as worker:
        wait_until(lambda: len(worker.of(events.JobStarted)) >= count, timeout=300,
                   message=f"{count} jobs started")
    return [e.job.queue for e in worker.of(events.JobStarted)[:count]]


def test_a_worker_starts_its_queues_6_3_1_under_backlog(clean_db: str) -> None:
    enqueue_interleaved(clean_db, dict.fromkeys(QUEUES, 1500))
    got = Counter(starts(clean_db, registry(), 2000, concurrency=10,
                         queues=["critical=w6", "default=w3", "low=w1"]))
    # 1200, 600 and 200 exactly in a perfect world (stride scheduling lags by
    # less than a job per queue); 3% of the 2,000 either way. Without weights
    # each would be about 667.
    assert abs(got["critical"] - 1200) <= 60, got
    assert abs(got["default"] - 600) <= 60, got
    assert abs(got["low"] - 200) <= 60, got


def test_python_queue_specs_weigh_as_the_cli_specs_do(clean_db: str) -> None:
    enqueue_interleaved(clean_db, dict.fromkeys(QUEUES[:2], 800))
    got = Counter(starts(clean_db, registry(QUEUES[:2]), 1000, concurrency=4, queues={
        "critical": pgqueue.QueueSpec(weight=3), "default": pgqueue.QueueSpec(slots=4)}))
    # default has weight 1 (none given) and 4 local slots.
    assert abs(got["critical"] - 750) <= 30, got


def test_an_idle_queue_leaves_its_share_to_the_others_by_their_weights(
        clean_db: str) -> None:
    # critical (weight 6) has no job at all: default and low split 3:1, and the
    # worker keeps every slot busy (its claims are full).
    enqueue_interleaved(clean_db, {"default": 900, "low": 900})
    got = Counter(starts(clean_db, registry(), 1000, concurrency=10,
                         queues=["critical=w6", "default=w3", "low=w1"]))
    assert got["critical"] == 0
    assert abs(got["default"] - 750) <= 30, got
    assert abs(got["low"] - 250) <= 30, got


def test_a_queue_that_was_idle_gets_its_share_when_jobs_come_not_a_burst(
        clean_db: str) -> None:
    tasks = registry(QUEUES[:2])
    enqueue_interleaved(clean_db, {"default": 3000})
    with running_worker(clean_db, tasks, concurrency=10,
                        queues=["critical=w1", "default=w1"]) as worker:
        wait_until(lambda: len(worker.of(events.JobStarted)) >= 500, timeout=300,
                   message="default alone ran a while")
        enqueue_interleaved(clean_db, {"critical": 1000})
        wait_until(lambda: any(e.job.queue == "critical"
                               for e in worker.of(events.JobStarted)), timeout=120)
        first = next(i for i, e in enumerate(worker.of(events.JobStarted))
                     if e.job.queue == "critical")
        wait_until(lambda: len(worker.of(events.JobStarted)) >= first + 400, timeout=300)
    after = Counter(e.job.queue for e in worker.of(events.JobStarted)[first:first + 400])
    # 1:1 from the first critical start on: the idle time earned critical nothing.
    assert abs(after["critical"] - 200) <= 25, after


def test_strict_order_drains_the_first_queue_first_whatever_the_priorities(
        clean_db: str) -> None:
    tasks = registry(QUEUES[:2])
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "w.default", "queue": "default", "priority": 10},
                                    {"task": "w.critical", "queue": "critical"}] * 300)
    order = starts(clean_db, tasks, 600, concurrency=10, queues=["critical", "default"],
                   queue_order="strict")
    assert order == ["critical"] * 300 + ["default"] * 300


def test_without_weights_the_claim_stays_priority_then_age_across_queues(
        clean_db: str) -> None:
    tasks = registry(QUEUES[:2])
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "w.critical", "queue": "critical"}] * 50
                             + [{"task": "w.default", "queue": "default", "priority": 5}] * 50)
    order = starts(clean_db, tasks, 100, concurrency=1, queues=["critical", "default"])
    assert order == ["default"] * 50 + ["critical"] * 50


def claim(dsn: str, queues: list[str], rooms: list[int], bases: list[float] | None,
          strides: list[float] | None, n: int, key_caps: dict[str, int] | None = None
          ) -> list[str]:
    key_caps = key_caps or {}
    rows = fetch(dsn, query("job_claim"), {
        "queues": queues, "slots": rooms, "bases": bases, "strides": strides,
        "fair": None, "cursors": None,
        "tasks": [f"w.{q}" for q in queues], "limit": n, "worker_id": str(uuid.uuid4()),
        "key_tasks": list(key_caps), "key_caps": list(key_caps.values()),
        "async_commit": False})
    return [r[1] for r in rows]


def test_the_claim_shares_by_turns_and_gives_a_full_queues_turns_to_the_others(
        clean_db: str) -> None:
    enqueue_interleaved(clean_db, dict.fromkeys(QUEUES, 30))
    turns = QueueTurns(list(QUEUES), "weighted", {"critical": 6, "default": 3, "low": 1})
    got = claim(clean_db, list(QUEUES), [10, 10, 10], *turns.turns(10), 10)
    assert Counter(got) == {"critical": 6, "default": 3, "low": 1}, got
    # In turn order (the order the worker starts them), not queue by queue.
    assert "default" in got[:3] and got[-1] != "low", got
    turns.record_jobs(got)
    # critical has room for 2 more only (its local slots): its other turns go
    # to default and low, 3:1.
    got = claim(clean_db, list(QUEUES), [2, 10, 10], *turns.turns(10), 10)
    assert Counter(got) == {"critical": 2, "default": 6, "low": 2}, got


def test_the_claim_reads_the_bases_it_is_sent(clean_db: str) -> None:
    enqueue_interleaved(clean_db, {"critical": 20, "default": 20})
    two = ["critical", "default"]
    assert claim(clean_db, two, [10, 10], [0.0, 10.0], [1.0, 1.0], 5) == ["critical"] * 5
    assert claim(clean_db, two, [10, 10], [10.0, 0.0], [1.0, 1.0], 5) == ["default"] * 5
    # No bases: priority, run_at and id across the queues (interleaved here).
    assert claim(clean_db, two, [10, 10], None, None, 4) == two * 2


def test_weighted_claims_keep_per_key_caps_and_queue_limits(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "w.critical", "queue": "critical",
                                     "concurrency_key": "k"}] * 10
                             + [{"task": "w.default", "queue": "default"}] * 10
                             + [{"task": "w.low", "queue": "low"}] * 10)
        pgqueue.set_concurrency_limit(conn, "low", 1)
    turns = QueueTurns(list(QUEUES), "weighted", {"critical": 6, "default": 3, "low": 1})
    # critical's key is capped at 2 running jobs, low's queue at 1 (the claim's
    # key-capped branch). The claim picks 6:3:1 by turns, then drops the jobs
    # over the key's cap (as in priority order: a cap is checked under the
    # key's lock, after the pick).
    got = claim(clean_db, list(QUEUES), [10, 10, 10], *turns.turns(10), 10,
                key_caps={"w.critical": 2})
    assert Counter(got) == {"critical": 2, "default": 3, "low": 1}, got
    # Now the key is at its cap and low at its limit: default takes every turn.
    got = claim(clean_db, list(QUEUES), [10, 10, 10], *turns.turns(10), 10,
                key_caps={"w.critical": 2})
    assert Counter(got) == {"default": 7}, got


def test_a_worker_keeps_a_queue_concurrency_limit_under_weights(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    inflight = Inflight()

    @tasks.task(name="w.critical", queue="critical")
    async def critical() -> None:
        inflight.enter("critical")
        await asyncio.sleep(0.05)
        inflight.leave("critical")

    @tasks.task(name="w.default", queue="default")
    async def default() -> None:
        inflight.enter("default")
        await asyncio.sleep(0.05)
        inflight.leave("default")

    with psycopg.connect(clean_db) as conn:
        pgqueue.set_concurrency_limit(conn, "critical", 2)
    enqueue_interleaved(clean_db, {"critical": 100, "default": 100})
    with running_worker(clean_db, tasks, concurrency=8,
                        queues=["critical=w6", "default=w1"]) as worker:
        wait_until(lambda: len(worker.finished()) == 200, timeout=300,
                   message="every job finished")
    # critical's limit held (its weight asked for more); default got the slots
    # critical could not use.
    assert inflight.peak["critical"] == 2, inflight.peak
    assert inflight.peak["default"] >= 4, inflight.peak


@pytest.mark.parametrize("queues, order, message", [
    (["a=w0"], None, "weight for queue 'a' must be 1 to 1000"),
    (["a=w1001"], None, "weight for queue 'a' must be 1 to 1000"),
    (["a=wx"], None, "must be an integer .* w and an integer .* or fair"),
    (["a=2:3"], None, "each at most once"),
    (["a=w2:w3"], None, "each at most once"),
    (["a=2:w"], None, "e.g. email=10, critical=w6, default=10:w3"),
    ({"a": pgqueue.QueueSpec(weight=0)}, None, "weight for queue 'a'"),
    ({"a": pgqueue.QueueSpec(slots=0, weight=2)}, None, "slots for queue 'a'"),
    ({"a": pgqueue.QueueSpec(weight=2.5)}, None, "weight for queue 'a' must be 1 to 1000"),
    (["a"], "fair", "queue_order must be one of priority, weighted, strict"),
    (["a=w2", "b"], "strict", "'strict' takes the queues in the order given and no weights"),
    (["a=w2"], "priority", "'priority' ignores weights"),
    (None, "strict", "'strict' needs the queues named"),
    (None, "weighted", "'weighted' needs the queues named"),
])
def test_bad_weights_and_orders_are_refused(clean_db: str, queues: Any, order: str | None,
                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pgqueue.Worker(registry(("a", "b")), dsn=clean_db, queues=queues, queue_order=order)


@pytest.mark.parametrize("args, message", [
    (["--queues", "default=w0"], "weight for queue 'default' must be 1 to 1000"),
    (["--queues", "default=10:w3:w2"], "each at most once"),
    (["--queues", "default=w3", "--queue-order", "strict"], "no weights"),
    (["--queues", "default", "--queue-order", "fair"], "'fair' is not one of"),
])
def test_worker_cli_refuses_bad_weights_and_orders(clean_db: str, args: list[str],
                                                   message: str) -> None:
    from pgqueue.cli import main

    result = cli_runner().invoke(main, ["worker", "--app", "tests.apps.worker_app:tasks",
                                        *args, "--dsn", clean_db])
    assert result.exit_code != 0
    assert message in result.output + str(result.exception), result.output
