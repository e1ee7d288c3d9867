"""Enqueue through SQLAlchemy 2.x sessions and connections: the session's transaction decides."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import URL, Engine, create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

import pgqueue
from tests.support import scalar


def _url(dsn: str, driver: str = "psycopg") -> URL:
    parts = conninfo_to_dict(dsn)
    return URL.create(f"postgresql+{driver}", username=parts.get("user"),
                      password=parts.get("password"), host=parts.get("host"),
                      port=int(parts["port"]) if "port" in parts else None,
                      database=parts.get("dbname"))


@pytest.fixture
def engine(clean_db: str) -> Iterator[Engine]:
    engine = create_engine(_url(clean_db))
    yield engine
    engine.dispose()


@pytest.fixture
def async_engine(clean_db: str) -> Iterator[AsyncEngine]:
    engine = create_async_engine(_url(clean_db))
    yield engine
    asyncio.run(engine.dispose())


def _jobs(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM pgqueue.jobs"))


def test_a_session_commit_keeps_the_job_and_a_rollback_drops_it(engine: Engine,
                                                                  clean_db: str) -> None:
    with Session(engine) as session:
        kept = pgqueue.enqueue(session, "send_email", {"to": "a@example.com"}, queue="email")
        assert _jobs(clean_db) == 0  # not committed yet
        session.commit()
    with Session(engine) as session:
        pgqueue.enqueue(session, "send_email", {"to": "b@example.com"})
        session.rollback()
    with Session(engine) as session:
        pgqueue.enqueue(session, "send_email", {"to": "c@example.com"})
        # closed without commit: rolled back
    assert scalar(clean_db, "SELECT array_agg(id) FROM pgqueue.jobs") == [kept]


def test_the_job_shares_the_session_transaction_with_the_orm_writes(engine: Engine,
                                                                     clean_db: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id serial PRIMARY KEY, total int)"))
    for commit in (True, False):
        with Session(engine) as session:
            order = session.execute(text("INSERT INTO orders (total) VALUES (3) RETURNING id")
                                    ).scalar_one()
            pgqueue.enqueue(session, "ship", {"order": order})
            session.commit() if commit else session.rollback()
    assert scalar(clean_db, "SELECT count(*) FROM orders") == 1
    assert scalar(clean_db, "SELECT array_agg(args->>'order') FROM pgqueue.jobs") == ["1"]


def test_savepoints_behave_as_in_plain_psycopg(engine: Engine, clean_db: str) -> None:
    with Session(engine) as session:
        outer = pgqueue.enqueue(session, "outer")
        nested = session.begin_nested()
        pgqueue.enqueue(session, "inner.rolled.back")
        nested.rollback()
        with session.begin_nested():
            inner = pgqueue.enqueue(session, "inner.kept")
        session.commit()
    assert sorted(scalar(clean_db, "SELECT array_agg(id) FROM pgqueue.jobs")) == [outer, inner]


def test_a_connection_begins_as_sqlalchemy_would_and_its_commit_decides(
        engine: Engine, clean_db: str) -> None:
    with engine.connect() as conn:
        assert not conn.in_transaction()
        first = pgqueue.enqueue(conn, "t")
        assert conn.in_transaction()
        conn.commit()
        pgqueue.enqueue(conn, "t")
        conn.rollback()
        pgqueue.enqueue(conn, "t")  # closed without commit: rolled back
    with engine.begin() as conn:
        second = pgqueue.enqueue(conn, "t")
    assert scalar(clean_db, "SELECT array_agg(id ORDER BY id) FROM pgqueue.jobs") == [first, second]


def test_a_scoped_session_is_accepted(engine: Engine, clean_db: str) -> None:
    registry = scoped_session(sessionmaker(engine))
    pgqueue.enqueue(registry, "t")
    registry.commit()
    registry.remove()
    assert _jobs(clean_db) == 1


def test_every_producer_call_works_through_a_session(engine: Engine, clean_db: str) -> None:
    with Session(engine) as session:
        ids = pgqueue.enqueue_many(session, [{"task": "t", "args": {"n": n}} for n in range(3)])
        first, second = pgqueue.chain(session, [{"task": "a"}, {"task": "b"}])
        with pgqueue.batch(session, name="import") as batch:
            batch.enqueue("t", {"n": 9})
        assert pgqueue.cancel(session, ids[0]) is pgqueue.CancelResult.CANCELLED
        assert pgqueue.pause_queue(session, "default")
        session.commit()
    with Session(engine) as session:
        detail = pgqueue.get_job(session, ids[1])
        assert detail is not None and detail.args == {"n": 1}
        assert {job.id for job in pgqueue.list_jobs(session).jobs} >= {*ids, first, second}
        with pytest.raises(pgqueue.ResultNotReadyError):
            pgqueue.result(session, ids[1])
        assert pgqueue.get_batch(session, batch.id) is not None
    assert _jobs(clean_db) == 2 + 2 + 1  # one of the first three cancelled


def test_many_jobs_go_through_copy_in_the_session_transaction(engine: Engine,
                                                              clean_db: str) -> None:
    with Session(engine) as session:
        pgqueue.enqueue_many(session, [{"task": "t", "args": {"n": n}} for n in range(2000)])
        session.rollback()
    assert _jobs(clean_db) == 0
    with Session(engine) as session:
        pgqueue.enqueue_many(session, [{"task": "t", "args": {"n": n}} for n in range(2000)])
        session.commit()
    assert _jobs(clean_db) == 2000


def test_waiting_for_a_result_needs_an_autocommit_engine(clean_db: str) -> None:
    engine = create_engine(_url(clean_db), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            job = pgqueue.enqueue(conn, "nobody.runs.this", delay=3600)
            with pytest.raises(TimeoutError, match="still queued"):
                pgqueue.wait_for_result(conn, job, timeout=0.2, poll_interval=0.1)
        with Session(create_engine(_url(clean_db))) as session, \
                pytest.raises(pgqueue.InvalidArgumentError, match="autocommit"):
            pgqueue.wait_for_result(session, job, timeout=0.2)
    finally:
        engine.dispose()


def test_an_engine_or_a_psycopg2_session_gets_a_type_error_that_says_what_to_pass(
        engine: Engine, clean_db: str) -> None:
    with pytest.raises(TypeError,
                       match=r"got sqlalchemy\.engine\.base\.Engine.*session\.connection"):
        pgqueue.enqueue(engine, "t")  # type: ignore[arg-type]
    old = create_engine(_url(clean_db, "psycopg2"))
    try:
        with Session(old) as session, pytest.raises(
                TypeError, match=r"psycopg2.*'postgresql\+psycopg://'"):
            pgqueue.enqueue(session, "t")
    finally:
        old.dispose()
    with Session(engine) as session, pytest.raises(TypeError, match=r"use pgqueue\.enqueue\b"):
        asyncio.run(pgqueue.enqueue_async(session, "t"))  # type: ignore[arg-type]
    assert _jobs(clean_db) == 0


def test_nothing_is_prepared_on_the_application_connection(engine: Engine) -> None:
    with Session(engine) as session:
        for _ in range(10):
            pgqueue.enqueue(session, "t")
            pgqueue.enqueue_many(session, [{"task": "t"}, {"task": "t"}])
            pgqueue.get_job(session, 1)
        prepared = session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar()
        session.rollback()
    assert prepared == 0


def test_own_loaders_read_args_whatever_the_connection_registered(conn: psycopg.Connection[Any]
                                                                  ) -> None:
    """An application's own jsonb loader (Django registers one) does not reach pgqueue."""

    class AsText(psycopg.adapt.Loader):
        def load(self, data: Any) -> str:
            return bytes(data).decode()

    conn.adapters.register_loader("jsonb", AsText)
    job = pgqueue.enqueue(conn, "t", {"n": 1})
    assert conn.execute("SELECT args FROM pgqueue.jobs").fetchone() == ('{"n": 1}',)
    detail = pgqueue.get_job(conn, job)
    assert detail is not None and detail.args == {"n": 1}
    assert pgqueue.list_jobs(conn).jobs[0].id == job


# --- async ------------------------------------------------------------------------------

def test_an_async_session_commit_keeps_the_job_and_a_rollback_drops_it(
        async_engine: AsyncEngine, clean_db: str) -> None:
    async def main() -> list[int]:
        async with AsyncSession(async_engine) as session:
            kept = await pgqueue.enqueue_async(session, "t", {"n": 1})
            await pgqueue.enqueue_many_async(session, [{"task": "t"}] * 3)
            nested = await session.begin_nested()
            await pgqueue.enqueue_async(session, "t.rolled.back")
            await nested.rollback()
            await session.commit()
        async with AsyncSession(async_engine) as session:
            await pgqueue.enqueue_async(session, "t")
            await session.rollback()
        async with async_engine.connect() as conn:
            other = await pgqueue.enqueue_async(conn, "t")
            assert conn.in_transaction()
            await conn.commit()
        async with AsyncSession(async_engine) as session:
            assert await pgqueue.cancel_async(session, other) is pgqueue.CancelResult.CANCELLED
            a, b = await pgqueue.chain_async(session, [{"task": "a"}, {"task": "b"}])
            await session.commit()
        return [kept, a, b]

    kept, a, b = asyncio.run(main())
    assert _jobs(clean_db) == 1 + 3 + 2
    assert scalar(clean_db, "SELECT args FROM pgqueue.jobs WHERE id = %s", (kept,)) == {"n": 1}
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs WHERE id IN (%s, %s)", (a, b)) == 2


def test_an_async_session_given_to_a_sync_call_names_the_async_twin(
        async_engine: AsyncEngine) -> None:
    async def main() -> None:
        async with AsyncSession(async_engine) as session:
            with pytest.raises(TypeError, match=r"use pgqueue\.enqueue_async"):
                pgqueue.enqueue(session, "t")  # type: ignore[arg-type]

    asyncio.run(main())
