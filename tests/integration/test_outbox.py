"""The transactional outbox: a job exists, and wakes workers, iff its transaction commits."""

from __future__ import annotations

from typing import Any

import psycopg

import pgqueue
from tests.conftest import Listener


def count_jobs(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
    assert row is not None
    return int(row[0])


def test_commit_makes_job_visible_and_notifies(
    conn: psycopg.Connection[Any], listener: Listener
) -> None:
    job_id = pgqueue.enqueue(conn, "send_email", {"to": "a@example.com"}, queue="email")
    with psycopg.connect(listener.dsn) as other:
        seen = other.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
        assert seen == (0,), "an uncommitted job must be invisible to other sessions"
    conn.commit()
    with psycopg.connect(listener.dsn) as other:
        row = other.execute(
            "SELECT queue, task, args, state FROM pgqueue.jobs WHERE id = %s", [job_id]
        ).fetchone()
    assert row == ("email", "send_email", {"to": "a@example.com"}, "queued")
    assert listener.payloads() == ["email"]


def test_rollback_leaves_no_row_and_no_notification(
    conn: psycopg.Connection[Any], listener: Listener
) -> None:
    pgqueue.enqueue(conn, "send_email", {"to": "a@example.com"}, queue="email")
    conn.rollback()
    assert count_jobs(conn) == 0
    assert listener.payloads() == []


def test_rolled_back_savepoint_drops_only_its_jobs(
    conn: psycopg.Connection[Any], listener: Listener
) -> None:
    kept = pgqueue.enqueue(conn, "t", {"n": 1}, queue="kept")
    try:
        with conn.transaction():
            pgqueue.enqueue(conn, "t", {"n": 2}, queue="dropped")
            raise RuntimeError("undo this savepoint")
    except RuntimeError:
        pass
    after = pgqueue.enqueue(conn, "t", {"n": 3}, queue="kept")
    conn.commit()
    rows = conn.execute("SELECT id, queue FROM pgqueue.jobs ORDER BY id").fetchall()
    assert rows == [(kept, "kept"), (after, "kept")]
    assert listener.payloads() == ["kept"]


def test_many_jobs_of_one_queue_in_one_transaction_notify_once(
    conn: psycopg.Connection[Any], listener: Listener
) -> None:
    for i in range(20):
        pgqueue.enqueue(conn, "t", {"i": i}, queue="bulk")
    pgqueue.enqueue_many(conn, [{"task": "t", "queue": "bulk"} for _ in range(100)])
    conn.commit()
    assert count_jobs(conn) == 120
    assert listener.payloads() == ["bulk"]


def test_enqueue_many_with_two_queues_notifies_each_queue_once(
    conn: psycopg.Connection[Any], listener: Listener
) -> None:
    specs: list[pgqueue.JobSpec] = [
        {"task": "t", "queue": "alpha" if i % 2 else "beta", "args": {"i": i}}
        for i in range(50)
    ]
    pgqueue.enqueue_many(conn, specs)
    conn.commit()
    assert sorted(listener.payloads()) == ["alpha", "beta"]


def test_sql_function_notifies_at_commit_only(
    conn: psycopg.Connection[Any], listener: Listener
) -> None:
    conn.execute("SELECT pgqueue.enqueue('t', '{}', 'from_sql')")
    conn.rollback()
    conn.execute("SELECT pgqueue.enqueue('t', '{}', 'from_sql_kept')")
    conn.commit()
    assert listener.payloads() == ["from_sql_kept"]


def test_enqueue_never_commits_and_autocommit_is_the_callers_choice(
    clean_db: str, listener: Listener
) -> None:
    with psycopg.connect(clean_db, autocommit=True) as auto:
        pgqueue.enqueue(auto, "t", queue="auto")
    assert listener.payloads() == ["auto"]
    with psycopg.connect(clean_db) as manual:
        pgqueue.enqueue(manual, "t", queue="manual")
        assert manual.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        manual.rollback()
    assert listener.payloads() == []
