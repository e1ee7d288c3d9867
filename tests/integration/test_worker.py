"""The worker end to end against a real PostgreSQL, in-process."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from tests.support import fetch, history, running_worker, scalar, wait_until

FAST_RETRY = pgqueue.RetryPolicy(base_seconds=0.05, max_seconds=0.2, jitter=0)


def enqueue(dsn: str, task: str, args: dict[str, Any] | None = None, **kw: Any) -> int:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue(conn, task, args, **kw)


def test_async_and_sync_handlers_run_with_context(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    seen: dict[str, Any] = {}

    @tasks.task(name="t.async", queue="q")
    async def run_async(x: int, ctx: pgqueue.JobContext) -> dict[str, int]:
        seen["async"] = (x, ctx.id, ctx.attempt, ctx.queue, ctx.task)
        return {"double": 2 * x}

    @tasks.task(name="t.sync", queue="q")
    def run_sync(x: int) -> int:
        seen["sync"] = (x, threading.current_thread().name)
        return x + 1

    with running_worker(clean_db, tasks) as w:
        a = enqueue(clean_db, "t.async", {"x": 3}, queue="q")
        s = tasks["t.sync"].enqueue(psycopg.connect(clean_db, autocommit=True), x=4)
        wait_until(lambda: len(w.finished("succeeded")) == 2)
    assert seen["async"] == (3, a, 1, "q", "t.async")
    assert seen["sync"][0] == 4 and seen["sync"][1].startswith("pgqueue-job")
    assert history(clean_db, a)["state"] == "succeeded"
    assert history(clean_db, a)["result"] == {"double": 6}
    assert history(clean_db, s)["result"] == 5
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.workers") == 0


def test_failure_retries_with_backoff_then_succeeds(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="flaky", retry=FAST_RETRY, max_attempts=5)
    def flaky(ctx: pgqueue.JobContext) -> None:
        if ctx.attempt < 3:
            raise RuntimeError(f"boom {ctx.attempt}")

    with running_worker(clean_db, tasks) as w:
        job = tasks["flaky"].enqueue(psycopg.connect(clean_db, autocommit=True))
        wait_until(lambda: w.finished("succeeded"))
    h = history(clean_db, job)
    assert h["state"] == "succeeded" and h["attempt"] == 3
    assert [e["message"] for e in h["errors"]] == ["RuntimeError: boom 1", "RuntimeError: boom 2"]
    assert all("Traceback" in e["traceback"] for e in h["errors"])
    retried = w.finished("retried")
    assert [e.retry_in_seconds for e in retried] == [0.05, 0.1]


def test_exhausted_attempts_fail_with_error_kept(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="always_fails", retry=FAST_RETRY)
    async def always_fails() -> None:
        raise ValueError("no luck")

    with running_worker(clean_db, tasks) as w:
        job = enqueue(clean_db, "always_fails", max_attempts=3)
        wait_until(lambda: w.finished("failed"))
    h = history(clean_db, job)
    assert h["state"] == "failed" and h["attempt"] == 3
    assert h["last_error"] == "ValueError: no luck"
    assert len(h["errors"]) == 3
    row = fetch(clean_db, "SELECT last_error FROM pgqueue.failed_jobs WHERE id = %s", [job])
    assert row == [("ValueError: no luck",)]


def test_retry_exception_sets_the_delay(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    starts: list[float] = []

    @tasks.task(name="later")
    def later(ctx: pgqueue.JobContext) -> None:
        starts.append(time.monotonic())
        if ctx.attempt == 1:
            raise pgqueue.Retry(delay=1.0, reason="not yet")

    with running_worker(clean_db, tasks, poll_interval=120) as w:
        job = enqueue(clean_db, "later")
        wait_until(lambda: w.finished("retried"), timeout=60)
        retried = time.monotonic()
        # Due 1 s after the retry was written (run_at and the error's time
        # come from the same statement).
        run_at_gap = scalar(clean_db, "SELECT extract(epoch FROM run_at "
                                      "- (errors -> 0 ->> 'at')::timestamptz) "
                                      "FROM pgqueue.all_jobs WHERE id = %s", [job])
        assert run_at_gap == 1
        # Woken by its own schedule, not by the 120 s poll.
        wait_until(lambda: w.finished("succeeded"), timeout=120)
        assert time.monotonic() - retried < 60
    assert starts[1] - starts[0] >= 0.9
    assert history(clean_db, job)["errors"][0]["kind"] == "retry"


def test_permanent_error_fails_at_once(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="hopeless", max_attempts=10)
    def hopeless() -> None:
        raise pgqueue.PermanentError("card declined")

    with running_worker(clean_db, tasks) as w:
        job = enqueue(clean_db, "hopeless")
        wait_until(lambda: w.finished("failed"))
    h = history(clean_db, job)
    assert (h["state"], h["attempt"]) == ("failed", 1)
    assert h["last_error"] == "PermanentError: card declined"


def test_timeouts_async_cancelled_and_sync_abandoned(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    cancelled = threading.Event()
    sync_saw_stop = threading.Event()

    @tasks.task(name="slow_async", timeout=0.2)
    async def slow_async() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    @tasks.task(name="slow_sync", timeout=0.2)
    def slow_sync(ctx: pgqueue.JobContext) -> None:
        if ctx.wait_for_stop(30):
            sync_saw_stop.set()

    with running_worker(clean_db, tasks) as w:
        a = enqueue(clean_db, "slow_async", max_attempts=1)
        s = enqueue(clean_db, "slow_sync", max_attempts=1)
        wait_until(lambda: len(w.finished("failed")) == 2)
    assert cancelled.is_set() and sync_saw_stop.is_set()
    for job in (a, s):
        h = history(clean_db, job)
        assert h["state"] == "failed"
        assert h["last_error"] == "timed out after 0.2 s"
        assert h["errors"][0]["kind"] == "timeout"


def test_unknown_task_is_never_claimed_and_shows_as_unclaimable(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="known", queue="mixed")
    def known() -> None: ...

    with running_worker(clean_db, tasks) as w:
        unknown = enqueue(clean_db, "not.registered", queue="mixed")
        known_id = enqueue(clean_db, "known", queue="mixed")
        wait_until(lambda: w.finished("succeeded"))
        stats = fetch(clean_db, "SELECT ready, unclaimable FROM pgqueue.queue_stats "
                                "WHERE queue = 'mixed'")
        assert stats == [(1, 1)]
    h = history(clean_db, unknown)
    assert (h["state"], h["attempt"]) == ("queued", 0)
    assert history(clean_db, known_id)["state"] == "succeeded"


def test_args_that_do_not_fit_the_handler_fail_without_retry(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="strict")
    def strict(a: int) -> None: ...

    with running_worker(clean_db, tasks) as w:
        job = enqueue(clean_db, "strict", {"b": 1}, max_attempts=5)
        wait_until(lambda: w.finished("failed"))
        assert w.worker.running_job_ids == []
    h = history(clean_db, job)
    assert h["attempt"] == 1 and h["errors"][0]["kind"] == "bad_args"
    assert "do not fit the handler" in h["last_error"]


def test_claims_follow_priority_then_run_at(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    order: list[str] = []

    @tasks.task(name="rec")
    def rec(tag: str) -> None:
        order.append(tag)

    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue(conn, "rec", {"tag": "low"}, priority=-5)
        pgqueue.enqueue(conn, "rec", {"tag": "normal-1"})
        pgqueue.enqueue(conn, "rec", {"tag": "normal-2"})
        pgqueue.enqueue(conn, "rec", {"tag": "high"}, priority=10)
    with running_worker(clean_db, tasks, concurrency=1) as w:
        wait_until(lambda: len(w.finished()) == 4)
    assert order == ["high", "normal-1", "normal-2", "low"]


def test_idle_worker_wakes_on_notify_and_on_run_at(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="ping")
    def ping() -> None: ...

    # A 60 s poll interval: only NOTIFY or the known run_at can wake it in time.
    with running_worker(clean_db, tasks, poll_interval=60) as w:
        time.sleep(0.2)  # let the first (empty) claim pass, so the worker is idle
        enqueue(clean_db, "ping")
        wait_until(lambda: w.finished("succeeded"), timeout=30, message="notify wake-up")
        enqueue(clean_db, "ping", delay=1.0)
        wait_until(lambda: len(w.finished("succeeded")) == 2, timeout=30,
                   message="run_at wake-up")


def test_twenty_workers_run_every_job_exactly_once(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    runs: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    @tasks.task(name="count")
    async def count(n: int) -> None:
        with lock:
            runs[n] += 1

    total = 20_000
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "count", "args": {"n": i}} for i in range(total)])
    workers = [pgqueue.Worker(tasks, dsn=clean_db, concurrency=10, poll_interval=1,
                              heartbeat_interval=1, stall_timeout=30, log_events=False)
               for _ in range(20)]
    lost: list[events.Event] = []
    for w in workers:
        w.subscribe(lambda e: lost.append(e) if isinstance(e, events.JobLost) else None)

    async def main() -> None:
        runners = [asyncio.create_task(w.run_async()) for w in workers]
        while scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") and \
                not any(r.done() for r in runners):
            await asyncio.sleep(0.2)
        for w in workers:
            w.stop()
        await asyncio.gather(*runners)

    asyncio.run(main())
    assert len(runs) == total and set(runs.values()) == {1}
    assert lost == []
    assert fetch(clean_db, "SELECT state::text, count(*), max(attempt) FROM pgqueue.finished_jobs "
                           "GROUP BY 1") == [("succeeded", total, 1)]
    assert scalar(clean_db, "SELECT count(DISTINCT worker_id) FROM pgqueue.finished_jobs") > 1


def test_connections_killed_mid_run_lose_nothing(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    runs: collections.Counter[int] = collections.Counter()

    @tasks.task(name="work")
    async def work(n: int) -> None:
        await asyncio.sleep(0.002)
        runs[n] += 1

    total = 3000
    with running_worker(clean_db, tasks, concurrency=20) as w:
        with psycopg.connect(clean_db) as conn:
            pgqueue.enqueue_many(conn, [{"task": "work", "args": {"n": i}} for i in range(total)])
        for _ in range(3):
            wait_until(lambda: len(runs) > 0)
            fetch(clean_db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() "
                            "AND application_name LIKE 'pgqueue-%%' AND pid <> pg_backend_pid()")
            time.sleep(0.3)
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs")
                   == total, timeout=300, message="all jobs finished after the cuts")
        assert w.of(events.ConnectionLost) and w.of(events.ConnectionRestored)
    assert set(runs) == set(range(total))
    assert fetch(clean_db, "SELECT DISTINCT state::text FROM pgqueue.finished_jobs") == [
        ("succeeded",)]


@pytest.mark.parametrize("bad", [{"queues": []}, {"concurrency": 0},
                                 {"stall_timeout": 1, "heartbeat_interval": 1},
                                 {"queues": ["bad queue"]}])
def test_worker_rejects_bad_settings(bad: dict[str, Any]) -> None:
    tasks = pgqueue.Registry()
    tasks.task(name="x")(lambda: None)
    with pytest.raises(pgqueue.PgQueueError):
        pgqueue.Worker(tasks, dsn="postgresql://localhost/x", **bad)


def test_worker_on_unmigrated_database_says_migrate(empty_dsn: str) -> None:
    tasks = pgqueue.Registry()
    tasks.task(name="x")(lambda: None)
    worker = pgqueue.Worker(tasks, dsn=empty_dsn, log_events=False)
    with pytest.raises(pgqueue.SchemaNotReadyError, match="pgqueue migrate"):
        asyncio.run(worker.run_async())


def test_long_jobs_are_not_hoarded_so_another_worker_gets_them(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    release = threading.Event()

    @tasks.task(name="long")
    def long() -> None:
        release.wait(120)

    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "long"} for _ in range(4)])
    try:
        with running_worker(clean_db, tasks, concurrency=2) as first:
            wait_until(lambda: len(first.of(events.JobStarted)) == 2)
            # Only its free slots: the other two jobs stay claimable...
            assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs "
                                    "WHERE state = 'running'") == 2
            with running_worker(clean_db, tasks, concurrency=2) as second:
                # ...and a second worker starts them while the first is busy.
                wait_until(lambda: len(second.of(events.JobStarted)) == 2, timeout=60)
                release.set()
                wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0,
                           timeout=60)
    finally:
        release.set()
