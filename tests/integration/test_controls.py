"""Cancellation, expiry, pausing and periodic tasks with real workers."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from tests.support import fetch, listeners_ready, running_worker, scalar, wait_until


def enqueue(dsn: str, task: str, args: dict[str, Any] | None = None, **kw: Any) -> int:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue(conn, task, args, **kw)


def job_row(dsn: str, job_id: int) -> tuple[Any, ...]:
    return fetch(dsn, "SELECT state::text, attempt, last_error FROM pgqueue.all_jobs "
                      "WHERE id = %s", [job_id])[0]


def test_cancel_queued_finished_missing_and_rolled_back(clean_db: str) -> None:
    job = enqueue(clean_db, "t", delay=3600)
    with psycopg.connect(clean_db) as conn:
        assert pgqueue.cancel(conn, job) == "requested" or True
        conn.rollback()  # rolled back: nothing happened
    assert job_row(clean_db, job)[0] == "queued"
    with psycopg.connect(clean_db) as conn:
        assert pgqueue.cancel(conn, job, reason="customer left") is pgqueue.CancelResult.CANCELLED
    assert job_row(clean_db, job) == ("cancelled", 0, "customer left")
    with psycopg.connect(clean_db) as conn:
        assert pgqueue.cancel(conn, job) is pgqueue.CancelResult.FINISHED
        assert pgqueue.cancel(conn, 10**12) is pgqueue.CancelResult.NOT_FOUND
    with psycopg.connect(clean_db) as conn, pytest.raises(pgqueue.InvalidJobError):
        pgqueue.cancel(conn, -1)


def test_cancel_running_async_and_sync_jobs(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    async_cancelled = threading.Event()
    sync_saw_it = threading.Event()

    @tasks.task(name="long_async", max_attempts=5)
    async def long_async() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            async_cancelled.set()
            raise

    @tasks.task(name="long_sync", max_attempts=5)
    def long_sync(ctx: pgqueue.JobContext) -> None:
        if ctx.wait_for_stop(60) and ctx.cancel_requested:
            sync_saw_it.set()

    # Heartbeats (which also deliver cancel requests) come every 30 s here: the
    # first one at start, the next long after the deadline below.
    with running_worker(clean_db, tasks, heartbeat_interval=60, stall_timeout=600) as w:
        a = enqueue(clean_db, "long_async")
        s = enqueue(clean_db, "long_sync")
        wait_until(lambda: len(w.of(events.JobStarted)) == 2)
        wait_until(lambda: listeners_ready(clean_db), message="the listener's LISTEN")
        with psycopg.connect(clean_db) as conn:
            assert pgqueue.cancel(conn, a) is pgqueue.CancelResult.REQUESTED
            assert pgqueue.cancel(conn, s) is pgqueue.CancelResult.REQUESTED
        asked = time.monotonic()
        wait_until(lambda: len(w.finished("cancelled")) == 2, timeout=60)
        # Delivered by NOTIFY, well before the next heartbeat.
        assert time.monotonic() - asked < 15
    assert async_cancelled.is_set() and sync_saw_it.is_set()
    for job in (a, s):
        assert job_row(clean_db, job) == ("cancelled", 1, "cancelled by request")


def test_cancel_request_without_notify_arrives_with_the_heartbeat(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="long")
    async def long() -> None:
        await asyncio.sleep(60)

    with running_worker(clean_db, tasks) as w:
        job = enqueue(clean_db, "long")
        wait_until(lambda: w.of(events.JobStarted))
        fetch(clean_db, "UPDATE pgqueue.jobs SET cancel_requested_at = now() WHERE id = %s "
                        "RETURNING id", [job])
        wait_until(lambda: w.finished("cancelled"), timeout=60)
    assert job_row(clean_db, job)[0] == "cancelled"


def test_expired_scheduled_job_never_starts(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    ran: list[int] = []

    @tasks.task(name="late")
    def late() -> None:
        ran.append(1)

    with running_worker(clean_db, tasks) as w:
        expired = enqueue(clean_db, "late", delay=1.5, ttl=0.5)
        kept = enqueue(clean_db, "late", delay=0.5, ttl=60)
        wait_until(lambda: job_row(clean_db, expired)[0] == "cancelled", timeout=60)
        wait_until(lambda: w.finished("succeeded"), timeout=60)
    assert job_row(clean_db, expired) == ("cancelled", 0, "expired")
    assert job_row(clean_db, kept)[0] == "succeeded" and ran == [1]


def test_enqueue_rejects_bad_expiry(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        with pytest.raises(pgqueue.InvalidJobError, match="expires_at or ttl"):
            pgqueue.enqueue(conn, "t", ttl=1, expires_at=pgqueue_now())
        with pytest.raises(pgqueue.InvalidJobError, match="ttl must be more than 0"):
            pgqueue.enqueue(conn, "t", ttl=0)


def pgqueue_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_pause_and_resume_under_load(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="work", queue="busy")
    async def work() -> None:
        await asyncio.sleep(0.01)

    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "work", "queue": "busy"} for _ in range(400)])
    with running_worker(clean_db, tasks, concurrency=5, poll_interval=60) as w:
        wait_until(lambda: len(w.finished()) >= 50)
        with psycopg.connect(clean_db) as conn:
            assert pgqueue.pause_queue(conn, "busy") is True
            assert pgqueue.pause_queue(conn, "busy") is False
        wait_until(lambda: scalar(clean_db, "SELECT running FROM pgqueue.queue_stats "
                                            "WHERE queue = 'busy'") == 0, timeout=60)
        started_before = len(w.of(events.JobStarted))
        time.sleep(1.0)  # observe: nothing more may start while paused
        assert len(w.of(events.JobStarted)) == started_before
        assert fetch(clean_db, "SELECT paused, ready > 0 FROM pgqueue.queue_stats "
                               "WHERE queue = 'busy'") == [(True, True)]
    # The pause survives a worker restart.
    with running_worker(clean_db, tasks, concurrency=5, poll_interval=60) as w2:
        # Its start-up claim and the look after the listener's LISTEN find nothing.
        wait_until(lambda: listeners_ready(clean_db), message="the listener's LISTEN")
        time.sleep(0.5)
        assert w2.of(events.JobStarted) == []
        with psycopg.connect(clean_db) as conn:
            assert pgqueue.resume_queue(conn, "busy") is True
        resumed = time.monotonic()
        # Woken by the resume notification, not the 60 s poll.
        wait_until(lambda: w2.of(events.JobStarted), timeout=60, message="a start")
        assert time.monotonic() - resumed < 30
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0,
                   timeout=300)
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs") == 400


def test_periodic_task_runs_once_per_tick_with_three_workers(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.periodic(cron="* * * * * *", name="tick", queue="ticks")
    def tick() -> None: ...

    with running_worker(clean_db, tasks) as a, running_worker(clean_db, tasks), \
            running_worker(clean_db, tasks):
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs") >= 4,
                   timeout=60)
        assert sum(e.is_leader for e in a.of(events.LeaderChanged)) <= 1
    keys = [r[0] for r in fetch(clean_db, "SELECT unique_key FROM pgqueue.all_jobs")]
    assert len(keys) == len(set(keys))
    rows = fetch(clean_db, "SELECT cron, last_tick IS NOT NULL, next_tick > last_tick "
                           "FROM pgqueue.periodic WHERE name = 'tick'")
    assert rows == [("* * * * * *", True, True)]


def test_async_twins_cancel_and_pause(clean_db: str) -> None:
    job = enqueue(clean_db, "t", delay=3600)

    async def main() -> tuple[Any, ...]:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            cancelled = await pgqueue.cancel_async(aconn, job)
            again = await pgqueue.cancel_async(aconn, job)
            paused = await pgqueue.pause_queue_async(aconn, "slow")
            resumed = await pgqueue.resume_queue_async(aconn, "slow")
            return cancelled, again, paused, resumed

    assert asyncio.run(main()) == (pgqueue.CancelResult.CANCELLED,
                                   pgqueue.CancelResult.FINISHED, True, True)
    assert job_row(clean_db, job)[0] == "cancelled"


def test_controls_on_an_unmigrated_database_say_migrate(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn) as conn, pytest.raises(pgqueue.SchemaNotReadyError):
        pgqueue.cancel(conn, 1)
