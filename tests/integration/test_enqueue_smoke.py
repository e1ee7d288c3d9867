from __future__ import annotations

from typing import Any

import psycopg

import pgqueue


def test_enqueue_commit_creates_job(conn: psycopg.Connection[Any]) -> None:
    job_id = pgqueue.enqueue(conn, "send_email", {"to": "a@example.com"}, queue="email")
    conn.commit()
    row = conn.execute(
        "SELECT queue, task, args, state FROM pgqueue.jobs WHERE id = %s", [job_id]
    ).fetchone()
    assert row == ("email", "send_email", {"to": "a@example.com"}, "queued")


def test_enqueue_many_returns_ids_in_order(conn: psycopg.Connection[Any]) -> None:
    ids = pgqueue.enqueue_many(
        conn, [{"task": "t", "args": {"i": i}, "unique_key": f"k{i % 3}"} for i in range(6)]
    )
    conn.commit()
    assert ids[:3] == ids[3:]
    rows = dict(conn.execute("SELECT id, args->>'i' FROM pgqueue.jobs").fetchall())
    assert [rows[i] for i in ids[:3]] == ["0", "1", "2"]
