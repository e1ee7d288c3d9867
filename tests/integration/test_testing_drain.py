"""pgqueue.testing.drain against the real database: outcomes written in the
caller's transaction exactly as the worker writes them."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.testing import (
    DrainContext,
    assert_enqueued,
    drain,
    drain_async,
    enqueued_jobs,
    refute_enqueued,
)

tasks = pgqueue.Registry()
CALLS: list[str] = []


@tasks.task(name="ok", queue="q1")
def ok(n: int) -> dict[str, int]:
    CALLS.append(f"ok {n}")
    return {"double": n * 2}


@tasks.task(name="ok_async", queue="q2")
async def ok_async(n: int) -> int:
    await asyncio.sleep(0)
    CALLS.append(f"ok_async {n}")
    return n + 1


@tasks.task(name="flaky", max_attempts=3,
            retry=pgqueue.RetryPolicy(base_seconds=60, jitter=0))
def flaky() -> None:
    raise RuntimeError("boom")


@tasks.task(name="retry_now", max_attempts=5)
def retry_now() -> None:
    raise pgqueue.Retry(0, "again")


@tasks.task(name="permanent")
def permanent() -> None:
    raise pgqueue.PermanentError("no way")


@tasks.task(name="parent")
def parent(depth: int, ctx: pgqueue.JobContext) -> None:
    assert isinstance(ctx, DrainContext)
    CALLS.append(f"parent {depth}")
    if depth > 0:
        conn = ctx.connection
        assert isinstance(conn, psycopg.Connection)
        tasks["parent"].enqueue(conn, depth=depth - 1)


@pytest.fixture(autouse=True)
def _calls() -> None:
    CALLS.clear()


def live(dsn: str) -> int:
    with psycopg.connect(dsn) as other:
        row = other.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
    return int(row[0]) if row else -1


def test_success_sync_and_async_handlers(conn: psycopg.Connection[Any]) -> None:
    tasks["ok"].enqueue(conn, n=2)
    tasks["ok_async"].enqueue(conn, n=5)
    result = drain(conn, tasks)
    assert sorted(result.outcomes) == [("ok", "succeeded"), ("ok_async", "succeeded")]
    assert {r.task: r.result for r in result} == {"ok": {"double": 4}, "ok_async": 6}
    assert pgqueue.result(conn, result[0].id) in ({"double": 4}, 6)
    refute_enqueued(conn)
    assert not result.limit_reached and result.left == []


def test_failure_retries_with_backoff_then_fails(conn: psycopg.Connection[Any]) -> None:
    job_id = tasks["flaky"].enqueue(conn)
    first = drain(conn, tasks)
    assert first.outcomes == [("flaky", "retried")]
    assert first[0].retry_in_seconds == 60 and first[0].error == "RuntimeError: boom"
    [job] = assert_enqueued(conn, task="flaky", state="queued", attempt=1)
    assert not job.due and job.last_error == "RuntimeError: boom"
    assert len(drain(conn, tasks)) == 0  # its retry is a minute away
    conn.execute("UPDATE pgqueue.jobs SET run_at = now(), attempt = 2 WHERE id = %s", [job_id])
    last = drain(conn, tasks)
    assert last.outcomes == [("flaky", "failed")]
    detail = pgqueue.get_job(conn, job_id)
    assert detail is not None and detail.state == "failed"


def test_a_job_runs_once_per_drain_even_when_its_retry_is_due(
        conn: psycopg.Connection[Any]) -> None:
    tasks["retry_now"].enqueue(conn)
    result = drain(conn, tasks)
    assert result.outcomes == [("retry_now", "retried")]
    assert [j.task for j in result.left] == ["retry_now"]
    assert drain(conn, tasks)[0].attempt == 2


def test_permanent_error_fails_at_once(conn: psycopg.Connection[Any]) -> None:
    tasks["permanent"].enqueue(conn)
    [ran] = drain(conn, tasks)
    assert (ran.outcome, ran.error_kind, ran.error) == ("failed", "permanent",
                                                        "PermanentError: no way")


def test_unknown_task_stays_queued(conn: psycopg.Connection[Any]) -> None:
    pgqueue.enqueue(conn, "nobody_knows", {"x": 1}, queue="q1")
    tasks["ok"].enqueue(conn, n=1)
    result = drain(conn, tasks)
    assert result.outcomes == [("ok", "succeeded")]
    assert [(j.task, j.args) for j in result.unknown] == [("nobody_knows", {"x": 1})]
    assert_enqueued(conn, task="nobody_knows", state="queued", attempt=0)


def test_children_are_drained_up_to_the_limit(conn: psycopg.Connection[Any]) -> None:
    tasks["parent"].enqueue(conn, depth=3)
    assert drain(conn, tasks).outcomes == [("parent", "succeeded")] * 4
    assert CALLS == ["parent 3", "parent 2", "parent 1", "parent 0"]
    tasks["parent"].enqueue(conn, depth=10)
    limited = drain(conn, tasks, limit=3)
    assert len(limited) == 3 and limited.limit_reached
    assert_enqueued(conn, task="parent", args={"depth": 7}, count=1)


def test_queue_and_task_filters(conn: psycopg.Connection[Any]) -> None:
    tasks["ok"].enqueue(conn, n=1)
    tasks["ok_async"].enqueue(conn, n=1)
    tasks["ok"].options(queue="q2").enqueue(conn, n=3)
    assert drain(conn, tasks, queues=["q2"], tasks=["ok"]).outcomes == [("ok", "succeeded")]
    assert CALLS == ["ok 3"]
    assert drain(conn, tasks, tasks=["ok_async"]).outcomes == [("ok_async", "succeeded")]
    assert drain(conn, tasks).outcomes == [("ok", "succeeded")]


def test_rolled_back_leaves_nothing(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        tasks["ok"].enqueue(conn, n=1)
        tasks["flaky"].enqueue(conn)
        assert len(drain(conn, tasks)) == 2
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.rollback()
        with psycopg.connect(clean_db) as other:
            row = other.execute("SELECT (SELECT count(*) FROM pgqueue.jobs) + "
                                "(SELECT count(*) FROM pgqueue.finished_jobs)").fetchone()
    assert row == (0,)


def test_drain_opens_a_transaction_rather_than_committing(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        conn.commit()
        drain(conn, tasks)
        tasks["ok"].enqueue(conn, n=1)
        drain(conn, tasks)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.rollback()
    assert live(clean_db) == 0


def test_drain_async(clean_db: str) -> None:
    async def scenario() -> list[tuple[str, str]]:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            await tasks["ok_async"].enqueue_async(aconn, n=1)
            await tasks["ok"].enqueue_async(aconn, n=1)
            result = await drain_async(aconn, tasks)
            await aconn.rollback()
            return sorted(result.outcomes)

    assert asyncio.run(scenario()) == [("ok", "succeeded"), ("ok_async", "succeeded")]
    assert live(clean_db) == 0


def test_wrong_connection_kinds_are_refused(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(TypeError, match=r"got object; use pgqueue\.testing\.drain_async"):
        drain(object(), tasks)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        drain(conn, tasks, limit=0)


def test_drain_runs_on_a_sqlalchemy_session_and_its_rollback_undoes_it(clean_db: str) -> None:
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy import URL, create_engine
    from sqlalchemy.orm import Session

    parts = conninfo_to_dict(clean_db)
    engine = create_engine(URL.create(
        "postgresql+psycopg", username=parts.get("user"), host=parts.get("host"),
        port=int(parts["port"]) if "port" in parts else None, database=parts.get("dbname")))
    try:
        with Session(engine) as session:
            tasks["ok"].enqueue(session, n=1)
            result = drain(session, tasks)
            assert result.outcomes == [("ok", "succeeded")]
            left_behind = enqueued_jobs(session)
            session.rollback()
    finally:
        engine.dispose()
    assert left_behind == []
    assert live(clean_db) == 0
