"""Queue limits across all workers and local per-queue slots, with real workers.

The global limits are enforced by pgqueue.claim in the database; these tests run
several workers at once and sample the database throughout the run.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.support import (
    Inflight,
    RunningSampler,
    cli_runner,
    fetch,
    running_worker,
    scalar,
    wait_until,
)


def enqueue_many(dsn: str, task: str, n: int, queue: str, **kw: Any) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue_many(conn, [{"task": task, "queue": queue, **kw}
                                           for _ in range(n)])


def finished_states(dsn: str, ids: list[int]) -> Counter[str]:
    rows = fetch(dsn, "SELECT state::text FROM pgqueue.finished_jobs WHERE id = ANY(%s)",
                 [ids])
    return Counter(r[0] for r in rows)


def test_a_concurrency_limit_of_3_holds_across_8_workers(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    inflight = Inflight()

    # Long enough that jobs claimed one after the other overlap however slow
    # the claims are on a loaded machine.
    @tasks.task(name="pay", queue="payment")
    async def pay() -> None:
        inflight.enter("payment")
        await asyncio.sleep(0.1)
        inflight.leave("payment")

    @tasks.task(name="mail", queue="email")
    async def mail() -> None:
        inflight.enter("email")
        await asyncio.sleep(0.1)
        inflight.leave("email")

    with psycopg.connect(clean_db) as conn:
        pgqueue.set_concurrency_limit(conn, "payment", 3)
    pay_ids = enqueue_many(clean_db, "pay", 150, "payment")
    mail_ids = enqueue_many(clean_db, "mail", 150, "email")
    with RunningSampler(clean_db, "queue") as sampler, ExitStack() as stack:
        for _ in range(8):
            stack.enter_context(running_worker(clean_db, tasks, concurrency=5))
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0,
                   timeout=300, message="every job finished")
    assert finished_states(clean_db, pay_ids + mail_ids) == {"succeeded": 300}
    assert sampler.samples > 50
    # Neither the database nor the handlers ever showed more than 3 payment jobs
    # running, and the limit was used (not a limit of 1 in disguise); email was
    # not limited.
    assert 0 < sampler.peak["payment"] <= 3, sampler.peak
    assert inflight.peak["payment"] == 3, inflight.peak
    assert inflight.peak["email"] > 3, inflight.peak


def test_a_limited_queue_is_woken_when_a_slot_frees_not_by_polling(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="one", queue="serial")
    async def one() -> None:
        await asyncio.sleep(0.05)

    with psycopg.connect(clean_db) as conn:
        pgqueue.set_concurrency_limit(conn, "serial", 1)
    ids = enqueue_many(clean_db, "one", 20, "serial")
    started = time.monotonic()
    with running_worker(clean_db, tasks, poll_interval=60), \
            running_worker(clean_db, tasks, poll_interval=60):
        wait_until(lambda: finished_states(clean_db, ids)["succeeded"] == 20, timeout=120)
    # One at a time: 20 x 50 ms, plus wake-ups by NOTIFY (a 60 s poll would take minutes).
    assert time.monotonic() - started < 50
    rows = fetch(clean_db, "SELECT started_at, finished_at FROM pgqueue.finished_jobs "
                           "ORDER BY started_at")
    for (_, end), (start, _) in itertools.pairwise(rows):
        assert start >= end - timedelta(milliseconds=5), "two jobs overlapped"


def test_a_rate_limit_holds_in_every_window_and_jobs_wait_rather_than_fail(
        clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="call_api", queue="partner")
    async def call_api() -> None:
        pass

    with psycopg.connect(clean_db) as conn:
        pgqueue.set_rate_limit(conn, "partner", 5, per=timedelta(seconds=1))
    ids = enqueue_many(clean_db, "call_api", 18, "partner")
    with running_worker(clean_db, tasks, concurrency=10), \
            running_worker(clean_db, tasks, concurrency=10), \
            running_worker(clean_db, tasks, concurrency=10):
        wait_until(lambda: finished_states(clean_db, ids)["succeeded"] == 18, timeout=120)
    rows = fetch(clean_db, "SELECT started_at, attempt FROM pgqueue.finished_jobs "
                           "ORDER BY started_at")
    assert all(attempt == 1 for _, attempt in rows), "over-limit jobs waited, not retried"
    starts = [r[0] for r in rows]
    # Sliding window: any 6 consecutive starts span at least the period.
    for first, sixth in zip(starts, starts[5:], strict=False):
        assert sixth - first >= timedelta(seconds=1), (first, sixth)
    # And the limit did not stall: 18 jobs at 5 a second take about 3 windows;
    # waiting a window per job (or a poll per window) would take far longer.
    assert starts[-1] - starts[0] < timedelta(seconds=15)


def test_limits_can_be_read_changed_and_removed(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        assert pgqueue.get_queue_limits(conn, "nowhere") is None
        pgqueue.set_concurrency_limit(conn, "api", 4)
        pgqueue.set_rate_limit(conn, "api", 100, per=60)
        limits = pgqueue.get_queue_limits(conn, "api")
        assert limits == pgqueue.QueueLimits(4, 0, 100, 60.0, 0)
        pgqueue.set_rate_limit(conn, "api", None)
        pgqueue.set_concurrency_limit(conn, "api", None)
        assert pgqueue.get_queue_limits(conn, "api") == pgqueue.QueueLimits(None, 0, None,
                                                                           None, 0)
        conn.commit()
    stats = fetch(clean_db, "SELECT concurrency_limit, rate_limit FROM pgqueue.queue_stats "
                            "WHERE queue = 'api'")
    assert stats == [(None, None)]


@pytest.mark.parametrize("call, message", [
    (lambda c: pgqueue.set_concurrency_limit(c, "q", 0), "concurrency limit"),
    (lambda c: pgqueue.set_concurrency_limit(c, "q", True), "concurrency limit"),
    (lambda c: pgqueue.set_concurrency_limit(c, "bad queue", 3), "queue name"),
    (lambda c: pgqueue.set_rate_limit(c, "q", 10), "per must be"),
    (lambda c: pgqueue.set_rate_limit(c, "q", 10, per=0), "per must be"),
    (lambda c: pgqueue.set_rate_limit(c, "q", 10, per=float("nan")), "per must be"),
    (lambda c: pgqueue.set_rate_limit(c, "q", None, per=5), "only meaningful"),
    (lambda c: pgqueue.set_rate_limit(c, "q", -1, per=5), "rate limit"),
])
def test_bad_limits_are_refused_and_change_nothing(clean_db: str, call: Any,
                                                    message: str) -> None:
    with psycopg.connect(clean_db) as conn:
        with pytest.raises(pgqueue.InvalidJobError, match=message):
            call(conn)
        conn.execute("SELECT 1")  # the transaction is still usable
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.queues") == 0


def test_sql_functions_set_limits_for_other_languages(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        conn.execute("SELECT pgqueue.set_concurrency_limit('q', 2)")
        conn.execute("SELECT pgqueue.set_rate_limit('q', 10, 1.5)")
        conn.commit()
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="both"):
            conn.execute("SELECT pgqueue.set_rate_limit('q', 10, NULL)")
    assert fetch(clean_db, "SELECT concurrency_limit, rate_limit, rate_period "
                           "FROM pgqueue.queues") == [(2, 10, 1.5)]


def test_local_slots_keep_one_busy_queue_from_starving_another(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    inflight = Inflight()
    done: list[str] = []
    # Bulk jobs hold their slots until every urgent job is done (or a deadline
    # passes): with shared slots they would take all 5 and urgent jobs could
    # only run after the deadline, behind them.
    deadline = time.monotonic() + 30

    @tasks.task(name="slow", queue="bulk")
    async def slow() -> None:
        inflight.enter("bulk")
        while done.count("urgent") < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        inflight.leave("bulk")
        done.append("bulk")

    @tasks.task(name="quick", queue="urgent")
    async def quick() -> None:
        inflight.enter("urgent")
        await asyncio.sleep(0.01)
        inflight.leave("urgent")
        done.append("urgent")

    bulk = enqueue_many(clean_db, "slow", 40, "bulk", priority=10)
    urgent = enqueue_many(clean_db, "quick", 10, "urgent")
    with running_worker(clean_db, tasks, queues=["bulk=2", "urgent=3"]) as w:
        assert w.worker.config.concurrency == 5
        wait_until(lambda: len(done) == 50, timeout=120)
    assert inflight.peak["bulk"] == 2 and inflight.peak["urgent"] <= 3
    # Urgent jobs did not wait behind the 40 higher-priority bulk jobs.
    assert done[:10] == ["urgent"] * 10, done
    assert finished_states(clean_db, bulk + urgent) == {"succeeded": 50}


@pytest.mark.parametrize("queues, message", [
    (["a=0"], "slots for queue"),
    (["a=x"], "must be an integer"),
    (["a", "a=2"], "named twice"),
    ("a=2", "not a single string"),
])
def test_bad_local_slots_are_refused(clean_db: str, queues: Any, message: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="t")
    def t() -> None: ...

    with pytest.raises(pgqueue.worker.config.ConfigError, match=message):
        pgqueue.Worker(tasks, dsn=clean_db, queues=queues)


def test_worker_cli_accepts_local_slots(clean_db: str) -> None:
    from pgqueue.cli import main

    result = cli_runner().invoke(main, ["worker", "--app", "tests.apps.worker_app:tasks",
                                       "--queues", "default=x", "--dsn", clean_db])
    assert result.exit_code != 0 and "e.g. email=10" in (result.output + str(result.exception))


def test_queue_limit_cli_sets_shows_and_removes(clean_db: str) -> None:

    from pgqueue.cli import main

    runner = cli_runner()
    result = runner.invoke(main, ["queue", "limit", "payment", "--concurrency", "3",
                                  "--rate", "100/1m", "--dsn", clean_db])
    assert result.exit_code == 0, result.output
    assert "concurrency limit 3" in result.output and "100 per 60 s" in result.output
    result = runner.invoke(main, ["queue", "limit", "payment", "--json", "--dsn", clean_db])
    assert '"concurrency_limit": 3' in result.output and '"rate_limit": 100' in result.output
    result = runner.invoke(main, ["queue", "limit", "payment", "--rate", "often",
                                  "--dsn", clean_db])
    assert result.exit_code == 2 and "JOBS/PERIOD" in result.output
    result = runner.invoke(main, ["queue", "limit", "payment", "--concurrency", "none",
                                  "--rate", "none", "--dsn", clean_db])
    assert result.exit_code == 0 and "concurrency limit none" in result.output
