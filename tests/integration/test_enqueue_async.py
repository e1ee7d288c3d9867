"""The async twins run the same validation and steps on a psycopg AsyncConnection."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.conftest import Listener


def jobs_in(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT queue, task, args FROM pgqueue.jobs ORDER BY id").fetchall()


def test_async_commit_makes_jobs_and_notifies(clean_db: str, listener: Listener) -> None:
    async def main() -> tuple[int, list[int]]:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            one = await pgqueue.enqueue_async(aconn, "t", {"n": 1}, queue="aio")
            many = await pgqueue.enqueue_many_async(
                aconn, [{"task": "t", "args": {"n": 2}, "queue": "aio2"}, {"task": "u"}]
            )
            await aconn.commit()
            return one, many

    one, many = asyncio.run(main())
    assert len({one, *many}) == 3
    assert jobs_in(clean_db) == [
        ("aio", "t", {"n": 1}),
        ("aio2", "t", {"n": 2}),
        ("default", "u", {}),
    ]
    assert sorted(listener.payloads()) == ["aio", "aio2", "default"]


def test_async_rollback_leaves_nothing(clean_db: str, listener: Listener) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            await pgqueue.enqueue_async(aconn, "t", queue="aio")
            await pgqueue.enqueue_many_async(aconn, [{"task": "t", "queue": "aio"}])
            await aconn.rollback()

    asyncio.run(main())
    assert jobs_in(clean_db) == []
    assert listener.payloads() == []


def test_async_unique_key_and_cursor(clean_db: str) -> None:
    async def main() -> list[int]:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            async with aconn.cursor() as cur:
                first = await pgqueue.enqueue_async(cur, "t", unique_key="k")
                again = await pgqueue.enqueue_async(aconn, "t", unique_key="k")
                many = await pgqueue.enqueue_many_async(
                    aconn, [{"task": "t", "unique_key": "k"}, {"task": "t", "unique_key": "j"}]
                )
            await aconn.commit()
            return [first, again, *many]

    first, again, many_k, many_j = asyncio.run(main())
    assert first == again == many_k != many_j


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param({"args": {"s": {1}}}, r"args\['s'\] is a set", id="set"),
        pytest.param({"priority": 5000}, r"priority must be between -1000 and 1000", id="priority"),
        pytest.param({"queue": ""}, r"queue '' is not a valid queue name", id="queue"),
    ],
)
def test_async_validation_shares_the_sync_path(
    clean_db: str, call: dict[str, Any], message: str
) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            await pgqueue.enqueue_async(aconn, "earlier")
            with pytest.raises(pgqueue.InvalidJobError, match=message):
                await pgqueue.enqueue_async(aconn, "t", **call)
            with pytest.raises(pgqueue.InvalidJobError, match=r"^jobs\[1\]: " + message):
                await pgqueue.enqueue_many_async(aconn, [{"task": "t"}, {"task": "t", **call}])
            assert aconn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
            await aconn.commit()

    asyncio.run(main())
    assert jobs_in(clean_db) == [("default", "earlier", {})]


def test_async_missing_schema_raises_schema_not_ready(empty_dsn: str) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(empty_dsn) as aconn:
            with pytest.raises(pgqueue.SchemaNotReadyError, match=r"pgqueue migrate"):
                await pgqueue.enqueue_async(aconn, "t")

    asyncio.run(main())
