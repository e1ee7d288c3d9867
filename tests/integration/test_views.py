"""The inspection views, on hand-made rows of every kind."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

WORKER = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
GONE_WORKER = uuid.UUID("00000000-0000-0000-0000-0000000000bb")


def finished(
    conn: psycopg.Connection[Any], queue: str, state: str, ago: str, *, n: int = 1,
    last_error: str | None = None,
) -> None:
    conn.execute(
        """
        INSERT INTO pgqueue.finished_jobs
            (id, queue, task, args, priority, state, attempt, max_attempts, run_at,
             created_at, started_at, finished_at, last_error, errors, worker_id)
        SELECT nextval(pg_get_serial_sequence('pgqueue.jobs', 'id')), %(queue)s, 't',
               jsonb_build_object('n', g), 0, %(state)s::pgqueue.job_state, 1, 5,
               now() - %(ago)s::interval, now() - %(ago)s::interval,
               now() - %(ago)s::interval, now() - %(ago)s::interval, %(err)s,
               CASE WHEN %(err)s::text IS NULL THEN '[]'::jsonb
                    ELSE jsonb_build_array(%(err)s::text) END,
               %(worker)s
        FROM generate_series(1, %(n)s) g
        """,
        {"queue": queue, "state": state, "ago": ago, "n": n, "err": last_error,
         "worker": WORKER},
    )


def live(
    conn: psycopg.Connection[Any], queue: str, run_at: str, *, n: int = 1, task: str = "t",
    state: str = "queued", worker: uuid.UUID | None = None,
) -> None:
    conn.execute(
        """
        INSERT INTO pgqueue.jobs
            (queue, task, args, state, run_at, attempt, started_at, heartbeat_at, worker_id)
        SELECT %(queue)s, %(task)s, jsonb_build_object('n', g), %(state)s::pgqueue.job_state,
               now() + %(run_at)s::interval,
               CASE WHEN %(state)s::text = 'running' THEN 1 ELSE 0 END,
               CASE WHEN %(state)s::text = 'running' THEN now() - interval '30 seconds' END,
               CASE WHEN %(state)s::text = 'running' THEN now() - interval '2 seconds' END,
               %(worker)s
        FROM generate_series(1, %(n)s) g
        """,
        {"queue": queue, "task": task, "state": state, "run_at": run_at, "n": n,
         "worker": worker},
    )


@pytest.fixture
def scene(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute(
        "INSERT INTO pgqueue.workers (id, host, pid, queues, tasks, concurrency)"
        " VALUES (%s, 'host-a', 4242, '{alpha}', '{t}', 4)",
        [WORKER],
    )
    conn.execute("INSERT INTO pgqueue.queues (name) VALUES ('empty')")
    live(conn, "alpha", "-60 seconds")
    live(conn, "alpha", "-5 seconds")
    live(conn, "alpha", "-1 seconds", task="nobody_runs_this")
    live(conn, "alpha", "10 minutes", n=2)
    live(conn, "alpha", "-1 minute", n=2, state="running", worker=WORKER)
    live(conn, "beta", "-1 seconds", state="running", worker=GONE_WORKER)
    live(conn, "beta", "1 hour")
    finished(conn, "alpha", "failed", "5 minutes", n=3, last_error="boom")
    finished(conn, "alpha", "failed", "3 days", last_error="old boom")
    finished(conn, "alpha", "succeeded", "10 minutes", n=4)
    finished(conn, "alpha", "succeeded", "30 seconds", n=1)
    finished(conn, "alpha", "succeeded", "2 hours", n=3)
    finished(conn, "alpha", "cancelled", "150 seconds")  # its own minute
    finished(conn, "beta", "succeeded", "59 minutes", n=2)
    conn.commit()
    return conn


def rows(conn: psycopg.Connection[Any], sql: str) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(sql).fetchall()


def test_queue_stats_counts(scene: psycopg.Connection[Any]) -> None:
    stats = {r.pop("queue"): r for r in rows(scene, "SELECT * FROM pgqueue.queue_stats")}
    assert set(stats) == {"alpha", "beta", "empty"}
    alpha = stats["alpha"]
    lag = alpha.pop("lag_seconds")
    assert isinstance(lag, Decimal)
    assert 60 <= lag < 90, "lag is the age of the oldest ready job"
    assert alpha == {
        "ready": 3, "scheduled": 2, "running": 2, "failed": 4, "succeeded_1h": 5,
        "unclaimable": 1, "paused": False, "blocked": 0,
        "concurrency_limit": None, "rate_limit": None, "rate_period": None,
        "depth": 7, "max_depth": None, "warn_depth": None,
    }
    assert stats["beta"] == {
        "ready": 0, "scheduled": 1, "running": 1, "failed": 0, "succeeded_1h": 2,
        "lag_seconds": 0, "unclaimable": 0, "paused": False, "blocked": 0,
        "concurrency_limit": None, "rate_limit": None, "rate_period": None,
        "depth": 2, "max_depth": None, "warn_depth": None,
    }
    assert stats["empty"] == {
        "ready": 0, "scheduled": 0, "running": 0, "failed": 0, "succeeded_1h": 0,
        "lag_seconds": 0, "unclaimable": 0, "paused": False, "blocked": 0,
        "concurrency_limit": None, "rate_limit": None, "rate_period": None,
        "depth": 0, "max_depth": None, "warn_depth": None,
    }


def test_queue_stats_without_workers_counts_every_ready_job_unclaimable(
    scene: psycopg.Connection[Any],
) -> None:
    scene.execute("DELETE FROM pgqueue.workers")
    stats = {r["queue"]: r for r in rows(scene, "SELECT * FROM pgqueue.queue_stats")}
    assert stats["alpha"]["unclaimable"] == stats["alpha"]["ready"] == 3


def test_running_jobs(scene: psycopg.Connection[Any]) -> None:
    running = rows(scene, "SELECT * FROM pgqueue.running_jobs ORDER BY queue, id")
    assert [(r["queue"], r["worker_id"], r["worker_host"], r["worker_pid"]) for r in running] == [
        ("alpha", WORKER, "host-a", 4242),
        ("alpha", WORKER, "host-a", 4242),
        ("beta", GONE_WORKER, None, None),
    ]
    for r in running:
        assert 30 <= r["running_seconds"] < 60
        assert 2 <= r["heartbeat_age_seconds"] < 30
        assert r["attempt"] == 1


def test_failed_jobs(scene: psycopg.Connection[Any]) -> None:
    failed = rows(scene, "SELECT * FROM pgqueue.failed_jobs ORDER BY finished_at DESC")
    assert [(r["queue"], r["last_error"], r["errors"]) for r in failed] == [
        ("alpha", "boom", ["boom"])
    ] * 3 + [("alpha", "old boom", ["old boom"])]
    assert {r["attempt"] for r in failed} == {1}


def test_scheduled_jobs(scene: psycopg.Connection[Any]) -> None:
    scheduled = rows(scene, "SELECT * FROM pgqueue.scheduled_jobs ORDER BY run_at")
    assert [r["queue"] for r in scheduled] == ["alpha", "alpha", "beta"]
    assert 500 < scheduled[0]["due_in_seconds"] <= 600
    assert 3000 < scheduled[2]["due_in_seconds"] <= 3600


def test_all_jobs(scene: psycopg.Connection[Any]) -> None:
    everything = rows(scene, "SELECT * FROM pgqueue.all_jobs")
    states: dict[str, int] = {}
    for r in everything:
        states[r["state"]] = states.get(r["state"], 0) + 1
    assert states == {"queued": 6, "running": 3, "failed": 4, "succeeded": 10, "cancelled": 1}
    assert len({r["id"] for r in everything}) == len(everything)
    assert all((r["finished_at"] is None) == (r["state"] in ("queued", "running"))
               for r in everything)


def test_recent_throughput(scene: psycopg.Connection[Any]) -> None:
    recent = rows(
        scene,
        "SELECT queue, sum(succeeded) AS succeeded, sum(failed) AS failed,"
        " sum(cancelled) AS cancelled, count(*) AS minutes"
        " FROM pgqueue.recent_throughput GROUP BY queue ORDER BY queue",
    )
    assert recent == [
        {"queue": "alpha", "succeeded": 5, "failed": 3, "cancelled": 1, "minutes": 4},
        {"queue": "beta", "succeeded": 2, "failed": 0, "cancelled": 0, "minutes": 1},
    ]
