"""What enqueue stores: defaults, scheduling, priority, bulk inserts, wrong inputs."""

from __future__ import annotations

import asyncio
import types
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import pgqueue


def job_row(conn: psycopg.Connection[Any], job_id: int) -> dict[str, Any]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    row = cur.execute("SELECT * FROM pgqueue.jobs WHERE id = %s", [job_id]).fetchone()
    assert row is not None
    return row


def test_defaults(conn: psycopg.Connection[Any]) -> None:
    job = job_row(conn, pgqueue.enqueue(conn, "t"))
    assert job["queue"] == "default"
    assert job["args"] == {}
    assert job["priority"] == 0
    assert job["max_attempts"] == 5
    assert job["attempt"] == 0
    assert job["state"] == "queued"
    assert job["errors"] == []
    assert job["unique_key"] is None
    assert job["run_at"] == job["created_at"]


def test_enqueue_on_a_cursor(conn: psycopg.Connection[Any]) -> None:
    with conn.cursor() as cur:
        job_id = pgqueue.enqueue(cur, "t", {"via": "cursor"})
        ids = pgqueue.enqueue_many(cur, [{"task": "t"}, {"task": "t"}])
    conn.commit()
    assert job_row(conn, job_id)["args"] == {"via": "cursor"}
    assert len(set(ids)) == 2


def test_run_at_in_the_future_is_stored(conn: psycopg.Connection[Any]) -> None:
    when = datetime(2040, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    tz_plus_2 = when.astimezone(timezone(timedelta(hours=2)))
    assert tz_plus_2.hour == 9
    assert job_row(conn, pgqueue.enqueue(conn, "t", run_at=when))["run_at"] == when
    assert job_row(conn, pgqueue.enqueue(conn, "t", run_at=tz_plus_2))["run_at"] == when


def test_delay_is_computed_by_the_database_clock(conn: psycopg.Connection[Any]) -> None:
    seconds = job_row(conn, pgqueue.enqueue(conn, "t", delay=90))
    delta = job_row(conn, pgqueue.enqueue(conn, "t", delay=timedelta(minutes=5, seconds=0.5)))
    # created_at and run_at both come from the transaction's now().
    assert seconds["run_at"] - seconds["created_at"] == timedelta(seconds=90)
    assert delta["run_at"] - delta["created_at"] == timedelta(minutes=5, seconds=0.5)
    bulk = pgqueue.enqueue_many(conn, [{"task": "t", "delay": 30}])
    row = job_row(conn, bulk[0])
    assert row["run_at"] - row["created_at"] == timedelta(seconds=30)


def test_priority_and_max_attempts_are_stored(conn: psycopg.Connection[Any]) -> None:
    for priority in (-1000, -1, 0, 7, 1000):
        job = job_row(conn, pgqueue.enqueue(conn, "t", priority=priority, max_attempts=9))
        assert (job["priority"], job["max_attempts"]) == (priority, 9)


def test_args_round_trip(conn: psycopg.Connection[Any]) -> None:
    args = {
        "text": "naïve ☃ \U0001f600",
        "int": 2**70,
        "float": 0.1,
        "neg_zero": -0.0,
        "list": [1, "two", None, True, {"three": 3.5}],
        "tuple": (1, 2),
        "empty": {},
        "proxy": types.MappingProxyType({"a": 1}),
    }
    stored = job_row(conn, pgqueue.enqueue(conn, "t", args))["args"]
    assert stored == {**args, "tuple": [1, 2], "proxy": {"a": 1}}


def test_enqueue_many_of_50000_jobs(conn: psycopg.Connection[Any]) -> None:
    n = 50_000  # its speed is measured in benchmarks/, not asserted here
    ids = pgqueue.enqueue_many(
        conn, ({"task": "bulk", "args": {"i": i}, "queue": f"q{i % 3}"} for i in range(n))
    )
    conn.commit()
    assert len(ids) == n
    assert len(set(ids)) == n
    assert ids == sorted(ids), "ids are reserved in input order"
    rows = conn.execute("SELECT id, (args->>'i')::int FROM pgqueue.jobs").fetchall()
    assert dict(rows) == {job_id: i for i, job_id in enumerate(ids)}


def test_enqueue_many_of_nothing_runs_nothing(conn: psycopg.Connection[Any]) -> None:
    assert pgqueue.enqueue_many(conn, []) == []
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_async_connection_to_sync_enqueue_is_a_type_error(dsn: str) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as aconn:
            with pytest.raises(TypeError, match=r"use pgqueue\.enqueue_async"):
                pgqueue.enqueue(aconn, "t")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"use pgqueue\.enqueue_many_async"):
                pgqueue.enqueue_many(aconn, [{"task": "t"}])  # type: ignore[arg-type]

    asyncio.run(main())


def test_sync_connection_to_async_enqueue_is_a_type_error(
    conn: psycopg.Connection[Any],
) -> None:
    with pytest.raises(TypeError, match=r"use pgqueue\.enqueue for a sync connection"):
        asyncio.run(pgqueue.enqueue_async(conn, "t"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"use pgqueue\.enqueue_many for a sync connection"):
        asyncio.run(pgqueue.enqueue_many_async(conn, [{"task": "t"}]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got str"):
        pgqueue.enqueue("postgresql://", "t")  # type: ignore[arg-type]


def test_missing_schema_raises_schema_not_ready(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn) as conn:
        with pytest.raises(pgqueue.SchemaNotReadyError, match=r"pgqueue migrate"):
            pgqueue.enqueue(conn, "t")
        conn.rollback()
        with pytest.raises(pgqueue.SchemaNotReadyError, match=r"pgqueue migrate"):
            pgqueue.enqueue_many(conn, [{"task": "t"}])
