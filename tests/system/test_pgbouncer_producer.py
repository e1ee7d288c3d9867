"""The producer side through a real PgBouncer: every kind of enqueue and inspection
on callers' own connections, which keep psycopg's defaults (prepared statements
from the fifth use), from several threads and tasks at once.

In transaction mode each transaction may run on another server connection, and
other clients' transactions run on this one's: a server-side prepared statement
or a session setting left behind shows up as an error here.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import CancelResult, JobFailedError, ResultNotReadyError
from tests.support import scalar

pytestmark = pytest.mark.slow

THREADS = 6
ROUNDS = 12
LARGE = 5_000
BULK_ROUNDS = 6


def _specs(queue: str, task: str, n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"task": task, "args": {"n": i}, "queue": queue, **extra} for i in range(n)]


def _sync_round(conn: psycopg.Connection[Any], queue: str, i: int) -> int:
    """One transaction of every kind of enqueue, then the inspection helpers;
    returns how many jobs it made."""
    one = pgqueue.enqueue(conn, "t.one", {"i": i}, queue=queue)
    pgqueue.enqueue(conn, "t.keyed", {"i": i}, queue=queue, unique_key=f"{queue}-k-{i}")
    copied = pgqueue.enqueue_many(conn, _specs(queue, "t.many", 3))
    keyed = {"task": "t.unique", "queue": queue, "unique_key": f"{queue}-u-{i}"}
    pgqueue.enqueue_many(conn, [*_specs(queue, "t.unique", 2, unique_key=None), keyed])
    chained = pgqueue.chain(conn, _specs(queue, "t.chain", 2))
    with pgqueue.batch(conn, name=f"{queue}-{i}") as opened:
        opened.enqueue("t.batch", {"i": i}, queue=queue)
        opened.enqueue_many(_specs(queue, "t.batch", 2))
    conn.commit()
    assert pgqueue.cancel(conn, one) == CancelResult.CANCELLED
    conn.commit()
    with pytest.raises(JobFailedError):
        pgqueue.result(conn, one)
    with pytest.raises(ResultNotReadyError):
        pgqueue.result(conn, copied[0])
    detail = pgqueue.get_job(conn, chained[1])
    assert detail is not None and detail.task == "t.chain"
    assert pgqueue.list_jobs(conn, queue=queue, limit=5).jobs
    assert pgqueue.get_batch(conn, opened.id) is not None
    conn.commit()
    return 1 + 1 + 3 + 3 + 2 + 3


def _run_threads(dsn: str, rounds: int = ROUNDS) -> list[int]:
    made = [0] * THREADS
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with psycopg.connect(dsn) as conn:
                for i in range(rounds):
                    made[index] += _sync_round(conn, f"q{index}", i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not errors, errors
    return made


def test_threaded_enqueue_of_every_kind_through_transaction_mode(pooled_dsn: str,
                                                                 clean_db: str) -> None:
    made = _run_threads(pooled_dsn)
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.all_jobs") == sum(made)
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs "
                            "WHERE state = 'cancelled'") == THREADS * ROUNDS


def test_single_enqueues_on_one_connection_each_commit(pooled_dsn: str, clean_db: str) -> None:
    """Many one-job transactions on one connection: each may meet another server."""
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with psycopg.connect(pooled_dsn) as conn:
                for i in range(40):
                    pgqueue.enqueue(conn, "t.one", {"i": i}, queue=f"q{index}")
                    conn.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == THREADS * 40


def test_large_enqueue_many_uses_copy_through_transaction_mode(pooled_dsn: str,
                                                               clean_db: str) -> None:
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with psycopg.connect(pooled_dsn) as conn:
                for _ in range(BULK_ROUNDS):
                    ids = pgqueue.enqueue_many(conn, _specs(f"bulk{index}", "t.bulk", LARGE))
                    conn.commit()
                    assert len(set(ids)) == LARGE
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not errors, errors
    with psycopg.connect(pooled_dsn, autocommit=True) as conn:
        assert len(pgqueue.enqueue_many(conn, _specs("bulk", "t.bulk", LARGE))) == LARGE
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == (3 * BULK_ROUNDS + 1) * LARGE


async def _async_round(conn: psycopg.AsyncConnection[Any], queue: str, i: int) -> int:
    one = await pgqueue.enqueue_async(conn, "t.one", {"i": i}, queue=queue)
    await pgqueue.enqueue_async(conn, "t.keyed", {"i": i}, queue=queue,
                                unique_key=f"{queue}-k-{i}")
    copied = await pgqueue.enqueue_many_async(conn, _specs(queue, "t.many", 3))
    await pgqueue.enqueue_many_async(conn, [
        {"task": "t.unique", "queue": queue, "unique_key": f"{queue}-u-{i}-{n}"}
        for n in range(2)])
    await pgqueue.chain_async(conn, _specs(queue, "t.chain", 2))
    async with pgqueue.batch_async(conn, name=f"{queue}-{i}") as opened:
        await opened.enqueue("t.batch", {"i": i}, queue=queue)
        await opened.enqueue_many(_specs(queue, "t.batch", 2))
    await conn.commit()
    assert await pgqueue.cancel_async(conn, one) == CancelResult.CANCELLED
    await conn.commit()
    with pytest.raises(JobFailedError):
        await pgqueue.result_async(conn, one)
    with pytest.raises(ResultNotReadyError):
        await pgqueue.result_async(conn, copied[0])
    assert await pgqueue.get_batch_async(conn, opened.id) is not None
    await conn.commit()
    return 1 + 1 + 3 + 2 + 2 + 3


async def _run_tasks(dsn: str, rounds: int = ROUNDS) -> int:
    async def work(index: int) -> int:
        made = 0
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            for i in range(rounds):
                made += await _async_round(conn, f"a{index}", i)
            big = await pgqueue.enqueue_many_async(conn, _specs(f"a{index}", "t.big", 2_000))
            await conn.commit()
        return made + len(big)

    return sum(await asyncio.gather(*(work(n) for n in range(THREADS))))


def test_async_enqueue_of_every_kind_through_transaction_mode(pooled_dsn: str,
                                                              clean_db: str) -> None:
    made = asyncio.run(_run_tasks(pooled_dsn))
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.all_jobs") == made


def test_every_kind_through_session_mode(session_pooled_dsn: str, clean_db: str) -> None:
    made = _run_threads(session_pooled_dsn, rounds=3)
    made_async = asyncio.run(_run_tasks(session_pooled_dsn, rounds=3))
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.all_jobs") == sum(made) + made_async
