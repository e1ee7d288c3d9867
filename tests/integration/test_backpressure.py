"""Bounded queues: max_depth refuses new jobs through every interface, warn_depth only
reports, and work already in the queue (retries, retries by hand, callbacks) is never
refused. The race of many producers at the limit is in test_backpressure_race.py."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

import pgqueue
from tests.integration.test_admin import finish
from tests.integration.test_api import call
from tests.support import cli_runner, running_worker, scalar, wait_until

Q = "bounded"


def live(dsn: str, queue: str = Q) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE queue = %s", [queue]))


def limit(dsn: str, max_depth: int | None = None, warn_depth: int | None = None) -> None:
    with psycopg.connect(dsn) as conn:
        pgqueue.set_max_depth(conn, Q, max_depth)
        pgqueue.set_warn_depth(conn, Q, warn_depth)


def test_a_full_queue_refuses_enqueue_and_the_transaction_stays_usable(clean_db: str) -> None:
    limit(clean_db, max_depth=3)
    with psycopg.connect(clean_db) as conn:
        conn.execute("CREATE TABLE bp_orders (id int)")
        ids = [pgqueue.enqueue(conn, "t", {"n": n}, queue=Q) for n in range(3)]
        with pytest.raises(pgqueue.QueueFullError) as refused:
            pgqueue.enqueue(conn, "t", {"n": 3}, queue=Q)
        err = refused.value
        assert (err.queue, err.max_depth, err.depth, err.adding) == (Q, 3, 3, 1)
        assert "'bounded' is full" in str(err) and "max_depth is 3" in str(err)
        assert isinstance(err, pgqueue.PgQueueError)
        conn.execute("INSERT INTO bp_orders VALUES (1)")  # the transaction goes on
        pgqueue.enqueue(conn, "t", queue="elsewhere")  # other queues are not bounded
    try:
        assert live(clean_db) == 3 and scalar(clean_db, "SELECT count(*) FROM bp_orders") == 1
        assert len(set(ids)) == 3
    finally:
        with psycopg.connect(clean_db, autocommit=True) as conn:
            conn.execute("DROP TABLE bp_orders")


def test_enqueue_many_is_all_or_nothing_per_call(clean_db: str) -> None:
    limit(clean_db, max_depth=5)
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "t", "queue": Q}] * 2)
        conn.commit()
        for jobs in ([{"task": "t", "queue": Q}] * 4,  # COPY path
                     [{"task": "t", "queue": Q, "unique_key": f"k{n}"} for n in range(4)]):
            with pytest.raises(pgqueue.QueueFullError) as refused:
                pgqueue.enqueue_many(conn, [*jobs, {"task": "t", "queue": "other"}])
            assert (refused.value.depth, refused.value.adding) == (2, 4)
        with pytest.raises(pgqueue.QueueFullError):
            pgqueue.chain(conn, [{"task": "t", "queue": Q}] * 4)
        assert live(clean_db) == 2 and live(clean_db, "other") == 0
        assert len(pgqueue.enqueue_many(conn, [{"task": "t", "queue": Q}] * 3)) == 3
        conn.commit()
    assert live(clean_db) == 5


def test_async_twins_refuse_too(clean_db: str) -> None:
    limit(clean_db, max_depth=1)

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(clean_db) as conn:
            await pgqueue.enqueue_async(conn, "t", queue=Q)
            with pytest.raises(pgqueue.QueueFullError):
                await pgqueue.enqueue_async(conn, "t", queue=Q)
            with pytest.raises(pgqueue.QueueFullError):
                await pgqueue.enqueue_many_async(conn, [{"task": "t", "queue": Q}])
            await pgqueue.set_max_depth_async(conn, Q, 2)
            await pgqueue.set_warn_depth_async(conn, Q, 1)
            await pgqueue.enqueue_async(conn, "t", queue=Q)

    asyncio.run(main())
    assert live(clean_db) == 2


def test_the_sql_function_raises_53Q01_naming_queue_limit_and_depth(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.set_max_depth(%s, 2)", [Q])
        conn.execute("SELECT pgqueue.enqueue('t', queue => %s) FROM generate_series(1, 2)", [Q])
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("SELECT pgqueue.enqueue('t', queue => %s)", [Q])
        assert refused.value.sqlstate == "53Q01"
        assert refused.value.diag.message_detail == f"queue={Q} max_depth=2 depth=2"
        assert "is full" in str(refused.value)
        conn.execute("SELECT pgqueue.set_max_depth(%s, NULL)", [Q])
        conn.execute("SELECT pgqueue.enqueue('t', queue => %s)", [Q])
    assert live(clean_db) == 3


def test_scheduled_blocked_and_running_jobs_count_finished_ones_do_not(clean_db: str) -> None:
    limit(clean_db, max_depth=3)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        first = pgqueue.enqueue(conn, "t", queue=Q, delay=3600)  # scheduled
        pgqueue.enqueue(conn, "t", queue=Q, depends_on=[first])  # blocked
        conn.execute("UPDATE pgqueue.jobs SET state = 'running', worker_id = gen_random_uuid(), "
                     "started_at = now() WHERE id = %s", [pgqueue.enqueue(conn, "t", queue=Q)])
        with pytest.raises(pgqueue.QueueFullError):
            pgqueue.enqueue(conn, "t", queue=Q)
        limits = pgqueue.get_queue_limits(conn, Q)
        assert limits is not None and (limits.max_depth, limits.depth) == (3, 3)
        stats = {r["queue"]: r for r in pgqueue.list_queues(conn)}[Q]
        assert (stats["depth"], stats["max_depth"], stats["warn_depth"]) == (3, 3, None)
        assert pgqueue.cancel(conn, first) is pgqueue.CancelResult.CANCELLED  # and its dependent
        pgqueue.enqueue(conn, "t", queue=Q)
    assert live(clean_db) == 2


def test_retries_retries_by_hand_and_batch_callbacks_are_never_refused(clean_db: str) -> None:
    registry = pgqueue.Registry()
    attempts: list[int] = []

    @registry.task(name="flaky", queue=Q)
    def flaky(ctx: pgqueue.JobContext, batch_id: int | None = None) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise pgqueue.Retry(delay=0)

    with psycopg.connect(clean_db, autocommit=True) as conn:
        failed = pgqueue.enqueue(conn, "gone", queue=Q)
        finish(conn, failed)  # now failed, in history
        with pgqueue.batch(conn, callback="flaky", callback_queue=Q) as batch:
            batch.enqueue("flaky", queue=Q)
        pgqueue.enqueue(conn, "flaky", queue=Q)
        pgqueue.set_max_depth(conn, Q, 2)  # full now
        assert pgqueue.retry(conn, failed) is pgqueue.RetryOutcome.RETRIED  # 3 live jobs
        with pytest.raises(pgqueue.QueueFullError):
            pgqueue.enqueue(conn, "flaky", queue=Q)
    with running_worker(clean_db, registry, queues=[Q]):
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs "
                                  "WHERE task = 'flaky' AND state = 'succeeded'") == 3,
                   timeout=60, message="both jobs and the callback succeed")
    # Both jobs were retried while the queue was full, then the batch's callback joined it.
    assert sorted(attempts) == [1, 1, 1, 2, 2, 2], attempts
    assert live(clean_db) == 1  # the job retried by hand (no handler here)


def test_warn_depth_only_logs_and_counts(clean_db: str, caplog: pytest.LogCaptureFixture) -> None:
    import pgqueue.observability.metrics  # subscribes to the producer's hooks

    def over_warn() -> float:
        value = REGISTRY.get_sample_value("pgqueue_enqueue_over_warn_depth_total", {"queue": Q})
        return value or 0.0

    before = over_warn()
    limit(clean_db, warn_depth=2)
    with psycopg.connect(clean_db) as conn, caplog.at_level(logging.WARNING, "pgqueue.producer"):
        pgqueue.enqueue_many(conn, [{"task": "t", "queue": Q}] * 2)
        assert not caplog.records
        pgqueue.enqueue(conn, "t", queue=Q)
        pgqueue.enqueue_many(conn, [{"task": "t", "queue": Q}] * 10)
    assert live(clean_db) == 13
    assert [r.getMessage() for r in caplog.records] == [
        "enqueue took the queue past its warn_depth"] * 2
    assert (caplog.records[0].depth, caplog.records[0].warn_depth) == (2, 2)  # type: ignore[attr-defined]
    assert over_warn() == before + 2


def test_refusals_are_counted(clean_db: str) -> None:
    from pgqueue.observability import metrics

    def refused() -> float:
        value = REGISTRY.get_sample_value("pgqueue_enqueue_refused_total", {"queue": Q})
        return value or 0.0

    before = refused()
    limit(clean_db, max_depth=1)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pgqueue.enqueue(conn, "t", queue=Q)
        for _ in range(2):
            with pytest.raises(pgqueue.QueueFullError):
                pgqueue.enqueue(conn, "t", queue=Q)
        metrics.apply_queue_stats(pgqueue.list_queues(conn))
    assert refused() == before + 2
    assert REGISTRY.get_sample_value("pgqueue_queue_max_depth", {"queue": Q}) == 1.0
    assert REGISTRY.get_sample_value("pgqueue_queue_depth", {"queue": Q}) == 1.0
    assert REGISTRY.get_sample_value("pgqueue_queue_warn_depth", {"queue": Q}) is None
    metrics.clear_queue_gauges()


def test_cli_sets_shows_and_removes_depth_limits_and_enqueue_exits_4(clean_db: str) -> None:
    from pgqueue.cli import main

    runner = cli_runner()
    result = runner.invoke(main, ["queue", "limit", Q, "--max-depth", "1", "--warn-depth", "1",
                                  "--dsn", clean_db])
    assert result.exit_code == 0, result.output
    assert "max depth 1; warn depth 1 (live jobs now: 0)" in result.output
    assert runner.invoke(main, ["enqueue", "t", "--queue", Q, "--dsn", clean_db]).exit_code == 0
    result = runner.invoke(main, ["enqueue", "t", "--queue", Q, "--dsn", clean_db])
    assert result.exit_code == 4 and "is full" in result.output, result.output
    result = runner.invoke(main, ["queue", "limit", Q, "--json", "--dsn", clean_db])
    shown = json.loads(result.output)
    assert (shown["max_depth"], shown["warn_depth"], shown["depth"]) == (1, 1, 1)
    result = runner.invoke(main, ["status", "--dsn", clean_db])
    assert "MAX_DEPTH" in result.output
    result = runner.invoke(main, ["queue", "limit", Q, "--max-depth", "off", "--warn-depth",
                                  "none", "--dsn", clean_db])
    assert result.exit_code == 0 and "max depth none; warn depth none" in result.output
    result = runner.invoke(main, ["queue", "limit", Q, "--max-depth", "0", "--dsn", clean_db])
    assert result.exit_code == 2 and "max_depth must be an int" in result.output
    assert runner.invoke(main, ["enqueue", "t", "--queue", Q, "--dsn", clean_db]).exit_code == 0


def test_api_answers_429_with_retry_after_and_the_dashboard_shows_it(
        dashboards: Callable[..., int], clean_db: str) -> None:
    base = f"http://127.0.0.1:{dashboards()}"
    limit(clean_db, max_depth=1)
    status, _, body = call(f"{base}/api/jobs", "POST", {"task": "t", "queue": Q})
    assert status == 201, body
    status, headers, body = call(f"{base}/api/jobs", "POST", {"task": "t", "queue": Q})
    payload: dict[str, Any] = json.loads(body)
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert (payload["queue"], payload["max_depth"], payload["depth"]) == (Q, 1, 1)
    assert "is full" in payload["error"]
    status, _, body = call(f"{base}/api/queues")
    row = {q["queue"]: q for q in json.loads(body)["queues"]}[Q]
    assert (row["depth"], row["max_depth"]) == (1, 1)
    status, _, page = call(f"{base}/")
    assert status == 200 and b"1 / 1" in page and b">full</span>" in page
    limit(clean_db, warn_depth=1)
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue(conn, "t", queue=Q)
    wait_until(lambda: b"over warn depth" in call(f"{base}/")[2], message="warn pill")


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "3", 10**10])
def test_bad_depths_are_refused_before_anything_runs(clean_db: str, value: Any) -> None:
    with psycopg.connect(clean_db) as conn:
        for setter in (pgqueue.set_max_depth, pgqueue.set_warn_depth):
            with pytest.raises(pgqueue.InvalidArgumentError):
                setter(conn, Q, value)
        with pytest.raises(pgqueue.InvalidArgumentError):
            pgqueue.set_max_depth(conn, "bad name!", 3)
        conn.execute("SELECT 1")  # usable


def test_wait_for_room_waits_outside_a_transaction_only(clean_db: str) -> None:
    limit(clean_db, max_depth=2)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        assert pgqueue.wait_for_room(conn, "unbounded", timeout=0)
        first = pgqueue.enqueue(conn, "t", queue=Q)
        pgqueue.enqueue(conn, "t", queue=Q)
        assert not pgqueue.wait_for_room(conn, Q, timeout=0.3, poll_interval=0.1)
        with conn.transaction(), pytest.raises(pgqueue.InvalidArgumentError,
                                               match="outside a transaction"):
            pgqueue.wait_for_room(conn, Q, timeout=1)
        with pytest.raises(pgqueue.InvalidArgumentError, match="jobs must be"):
            pgqueue.wait_for_room(conn, Q, timeout=1, jobs=0)
        freer = threading.Timer(0.5, lambda: cancel_from_elsewhere(clean_db, first))
        freer.start()
        try:
            assert pgqueue.wait_for_room(conn, Q, timeout=60, poll_interval=0.05)
        finally:
            freer.join()
        pgqueue.enqueue(conn, "t", queue=Q)
    with psycopg.connect(clean_db) as conn, pytest.raises(pgqueue.InvalidArgumentError):
        pgqueue.wait_for_room(conn, Q, timeout=1)  # not autocommit

    async def main() -> bool:
        async with await psycopg.AsyncConnection.connect(clean_db, autocommit=True) as aconn:
            return await pgqueue.wait_for_room_async(aconn, Q, timeout=0.2, poll_interval=0.1)

    assert asyncio.run(main()) is False


def cancel_from_elsewhere(dsn: str, job_id: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        pgqueue.cancel(conn, job_id)
