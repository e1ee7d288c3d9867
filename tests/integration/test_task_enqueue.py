from __future__ import annotations

import asyncio
from typing import Any

import psycopg

import pgqueue

tasks = pgqueue.Registry()


@tasks.task(name="mail.send", queue="email", priority=7, max_attempts=2)
def send(delay: int, to: str) -> None: ...


def test_task_enqueue_uses_task_defaults_and_options(conn: psycopg.Connection[Any]) -> None:
    plain = send.enqueue(conn, delay=3, to="a@example.com")
    later = send.options(delay=60, unique_key="once").enqueue(conn, delay=4, to="b")
    again = send.options(unique_key="once").enqueue(conn, delay=5, to="c")
    conn.commit()
    rows = {r[0]: r[1:] for r in conn.execute(
        "SELECT id, queue, priority, max_attempts, args, run_at > now() + interval '50 s' "
        "FROM pgqueue.jobs").fetchall()}
    assert rows[plain] == ("email", 7, 2, {"delay": 3, "to": "a@example.com"}, False)
    assert rows[later][3:] == ({"delay": 4, "to": "b"}, True)
    assert again == later and len(rows) == 2


def test_task_enqueue_async(clean_db: str) -> None:
    async def main() -> int:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            job = await send.enqueue_async(aconn, delay=1, to="x")
            await aconn.rollback()
            return job

    asyncio.run(main())
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)
