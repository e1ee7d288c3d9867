"""Unique keys: while a live job holds a key, enqueueing that key returns the holder."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

import pgqueue
from tests.conftest import wait_for


def test_same_key_returns_same_id(conn: psycopg.Connection[Any]) -> None:
    first = pgqueue.enqueue(conn, "t", {"v": 1}, unique_key="order-1")
    second = pgqueue.enqueue(conn, "t", {"v": 2}, unique_key="order-1")
    conn.commit()
    third = pgqueue.enqueue(conn, "other_task", unique_key="order-1")
    conn.commit()
    assert first == second == third
    rows = conn.execute("SELECT id, args FROM pgqueue.jobs").fetchall()
    assert rows == [(first, {"v": 1})], "the holder's args are kept"


def test_different_keys_and_no_key_make_new_jobs(conn: psycopg.Connection[Any]) -> None:
    ids = {
        pgqueue.enqueue(conn, "t", unique_key="a"),
        pgqueue.enqueue(conn, "t", unique_key="b"),
        pgqueue.enqueue(conn, "t"),
        pgqueue.enqueue(conn, "t"),
    }
    assert len(ids) == 4


def test_key_is_free_after_holder_is_deleted(conn: psycopg.Connection[Any]) -> None:
    first = pgqueue.enqueue(conn, "t", unique_key="k")
    conn.commit()
    conn.execute("DELETE FROM pgqueue.jobs WHERE id = %s", [first])
    conn.commit()
    second = pgqueue.enqueue(conn, "t", unique_key="k")
    conn.commit()
    assert second != first


def test_key_is_free_after_holder_moves_to_history(conn: psycopg.Connection[Any]) -> None:
    first = pgqueue.enqueue(conn, "t", unique_key="k")
    conn.commit()
    # What the worker's completer does: leave the live table in the finishing statement.
    conn.execute(
        """
        WITH done AS (DELETE FROM pgqueue.jobs WHERE id = %s RETURNING *)
        INSERT INTO pgqueue.finished_jobs
            (id, queue, task, args, priority, state, attempt, max_attempts, run_at,
             created_at, unique_key, errors)
        SELECT id, queue, task, args, priority, 'succeeded', 1, max_attempts, run_at,
               created_at, unique_key, errors
        FROM done
        """,
        [first],
    )
    conn.commit()
    second = pgqueue.enqueue(conn, "t", unique_key="k")
    conn.commit()
    assert second != first
    assert pgqueue.enqueue_many(conn, [{"task": "t", "unique_key": "k"}]) == [second]


def test_racing_producers_make_one_job(clean_db: str) -> None:
    rounds = 10
    barrier = threading.Barrier(2)

    def produce(key: str) -> int:
        with psycopg.connect(clean_db) as conn:
            conn.execute("SELECT 1")  # open the transaction before the race
            barrier.wait(timeout=10)
            job_id = pgqueue.enqueue(conn, "t", {"key": key}, unique_key=key)
            conn.commit()
            return job_id

    with ThreadPoolExecutor(max_workers=2) as pool:
        for n in range(rounds):
            key = f"race-{n}"
            a, b = pool.map(produce, [key, key])
            assert a == b
    with psycopg.connect(clean_db) as conn:
        rows = conn.execute(
            "SELECT unique_key, count(*) FROM pgqueue.jobs GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [(f"race-{n}", 1) for n in range(rounds)]


def test_waiting_producer_inserts_when_holder_rolls_back(clean_db: str) -> None:
    with psycopg.connect(clean_db) as holder, psycopg.connect(clean_db) as waiter:
        held = pgqueue.enqueue(holder, "t", unique_key="k")
        waiter_pid = waiter.info.backend_pid
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(pgqueue.enqueue, waiter, "t", unique_key="k")

            def waiter_blocked() -> bool:
                with psycopg.connect(clean_db, autocommit=True) as watch:
                    row = watch.execute(
                        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                        [waiter_pid],
                    ).fetchone()
                return row == ("Lock",)

            wait_for(waiter_blocked, what="the second producer to wait on the key")
            holder.rollback()
            got = future.result(timeout=10)
        waiter.commit()
    assert got != held
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT id FROM pgqueue.jobs").fetchall() == [(got,)]


def test_enqueue_many_duplicates_within_batch_and_against_live_jobs(
    conn: psycopg.Connection[Any],
) -> None:
    live = pgqueue.enqueue(conn, "t", {"n": "live"}, unique_key="live")
    conn.commit()
    ids = pgqueue.enqueue_many(
        conn,
        [
            {"task": "t", "args": {"n": 0}, "unique_key": "a"},
            {"task": "t", "args": {"n": 1}, "unique_key": "live"},
            {"task": "t", "args": {"n": 2}, "unique_key": "a"},
            {"task": "t", "args": {"n": 3}},
            {"task": "t", "args": {"n": 4}, "unique_key": "b"},
            {"task": "t", "args": {"n": 5}, "unique_key": "live"},
            {"task": "t", "args": {"n": 6}},
        ],
    )
    conn.commit()
    assert ids[1] == ids[5] == live
    assert ids[0] == ids[2]
    assert len({ids[0], ids[3], ids[4], ids[6], live}) == 5
    rows = dict(conn.execute("SELECT id, args->>'n' FROM pgqueue.jobs").fetchall())
    assert rows == {live: "live", ids[0]: "0", ids[3]: "3", ids[4]: "4", ids[6]: "6"}
