"""Results: read a finished job's return value, or wait for it, with real workers."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.support import idle_after, running_worker, wait_until


def enqueue(dsn: str, task: str, args: dict[str, Any] | None = None, **kw: Any) -> int:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue(conn, task, args, **kw)


def test_result_of_each_state(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    started = threading.Event()
    release = threading.Event()

    @tasks.task(name="r.ok")
    def ok(x: int) -> dict[str, Any]:
        return {"double": 2 * x, "items": [x, None]}

    @tasks.task(name="r.none")
    def none() -> None:
        return None

    @tasks.task(name="r.bad")
    def bad() -> None:
        raise pgqueue.PermanentError("card declined")

    @tasks.task(name="r.slow")
    def slow() -> int:
        started.set()
        release.wait(30)
        return 7

    with psycopg.connect(clean_db, autocommit=True) as conn:
        queued = pgqueue.enqueue(conn, "r.ok", {"x": 1}, delay=3600)
        cancelled = pgqueue.enqueue(conn, "r.ok", {"x": 1}, delay=3600)
        pgqueue.cancel(conn, cancelled, reason="not needed")
        with running_worker(clean_db, tasks) as w:
            a = pgqueue.enqueue(conn, "r.ok", {"x": 21})
            n = pgqueue.enqueue(conn, "r.none")
            b = pgqueue.enqueue(conn, "r.bad")
            s = pgqueue.enqueue(conn, "r.slow")
            assert started.wait(30)
            with pytest.raises(pgqueue.ResultNotReadyError) as running:
                pgqueue.result(conn, s)
            assert running.value.state == "running" and running.value.job_id == s
            release.set()
            wait_until(lambda: len(w.finished()) == 4, message="four outcomes")

        assert pgqueue.result(conn, a) == {"double": 42, "items": [21, None]}
        assert pgqueue.result(conn.cursor(), n) is None
        assert pgqueue.result(conn, s) == 7
        with pytest.raises(pgqueue.JobFailedError) as failed:
            pgqueue.result(conn, b)
        assert (failed.value.state, failed.value.attempts) == ("failed", 1)
        assert "card declined" in (failed.value.last_error or "")
        assert f"job {b} ended failed after 1 attempt: " in str(failed.value)
        with pytest.raises(pgqueue.JobFailedError) as gone:
            pgqueue.result(conn, cancelled)
        assert (gone.value.state, gone.value.last_error) == ("cancelled", "not needed")
        with pytest.raises(pgqueue.ResultNotReadyError, match="it is queued"):
            pgqueue.result(conn, queued)
        with pytest.raises(pgqueue.JobNotFoundError, match="no job has id 999999999"):
            pgqueue.result(conn, 999_999_999)
        with pytest.raises(pgqueue.InvalidArgumentError):
            pgqueue.result(conn, 0)
        assert isinstance(pgqueue.JobNotFoundError(1), LookupError)

        async def read_async() -> Any:
            async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
                return await pgqueue.result_async(aconn, a)

        assert asyncio.run(read_async()) == {"double": 42, "items": [21, None]}
    with pytest.raises(TypeError, match="result_async"):
        asyncio.run(_call_sync_on_async(clean_db, a))


async def _call_sync_on_async(dsn: str, job_id: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as aconn:
        pgqueue.result(aconn, job_id)  # type: ignore[arg-type]


def test_wait_for_result_wakes_on_notify(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    release = threading.Event()
    released_at: list[float] = []
    waiter_pids: list[int] = []

    @tasks.task(name="w.gate")
    def gate(x: int) -> int:
        release.wait(120)
        return x + 1

    def open_gate(waiter: int) -> None:
        # Only once the waiter has looked at the job (still running) and sits in
        # its wait: from then on only a notification or the poll can wake it.
        pid = wait_until(lambda: waiter_pids[waiter:waiter + 1],
                         message="the waiter's connection")[0]
        wait_until(lambda: idle_after(clean_db, pid, "job_result_get"), timeout=60,
                   message="the waiter to wait")
        released_at.append(time.monotonic())
        release.set()

    with running_worker(clean_db, tasks), \
            psycopg.connect(clean_db, autocommit=True) as conn:
        job = pgqueue.enqueue(conn, "w.gate", {"x": 41})
        waiter_pids.append(conn.info.backend_pid)
        threading.Thread(target=open_gate, args=(0,), daemon=True).start()
        # The periodic look comes only after 60 s: the notification must wake it.
        assert pgqueue.wait_for_result(conn, job, timeout=120, poll_interval=60) == 42
        woke_after = time.monotonic() - released_at[0]
        assert woke_after < 30, woke_after
        # The wait cleaned up after itself: not listening, connection usable.
        assert conn.execute("SELECT count(*) FROM pg_listening_channels()").fetchone() == (0,)
        # A job already finished answers at once.
        assert pgqueue.wait_for_result(conn, job, timeout=0) == 42

        release.clear()
        job = pgqueue.enqueue(conn, "w.gate", {"x": 1})
        threading.Thread(target=open_gate, args=(1,), daemon=True).start()

        async def wait_async() -> Any:
            async with await psycopg.AsyncConnection.connect(clean_db,
                                                             autocommit=True) as aconn:
                waiter_pids.append(aconn.info.backend_pid)
                return await pgqueue.wait_for_result_async(aconn, job, timeout=120,
                                                           poll_interval=60)

        assert asyncio.run(wait_async()) == 2
        woke_after = time.monotonic() - released_at[1]
        assert woke_after < 30, woke_after


def test_wait_for_result_times_out_cleanly(clean_db: str) -> None:
    job = enqueue(clean_db, "nobody.runs.this", delay=3600)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        started = time.monotonic()
        with pytest.raises(TimeoutError,
                           match=rf"job {job} did not finish within 0\.3 s; it is still queued"):
            pgqueue.wait_for_result(conn, job, timeout=0.3, poll_interval=60)
        # Not before the timeout, and the timeout (not the 60 s poll) ended it.
        assert 0.3 <= time.monotonic() - started < 30
        assert conn.execute("SELECT count(*) FROM pg_listening_channels()").fetchone() == (0,)

        async def wait_async() -> None:
            async with await psycopg.AsyncConnection.connect(clean_db,
                                                             autocommit=True) as aconn:
                await pgqueue.wait_for_result_async(aconn, job, timeout=0.2, poll_interval=60)

        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
            asyncio.run(wait_async())
        assert 0.2 <= time.monotonic() - started < 30
        with pytest.raises(pgqueue.JobNotFoundError):
            pgqueue.wait_for_result(conn, 999_999_999, timeout=5)


def test_wait_for_result_needs_an_autocommit_connection(clean_db: str) -> None:
    job = enqueue(clean_db, "nobody.runs.this", delay=3600)
    with psycopg.connect(clean_db) as conn, \
            pytest.raises(pgqueue.InvalidArgumentError, match="needs an autocommit connection"):
        pgqueue.wait_for_result(conn, job, timeout=1)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        with conn.transaction(), pytest.raises(pgqueue.InvalidArgumentError,
                                               match="no transaction open"):
            pgqueue.wait_for_result(conn, job, timeout=1)
        with pytest.raises(pgqueue.InvalidArgumentError, match="poll_interval"):
            pgqueue.wait_for_result(conn, job, timeout=1, poll_interval=0)
        with pytest.raises(pgqueue.InvalidArgumentError, match="timeout"):
            pgqueue.wait_for_result(conn, job, timeout=float("nan"))
        with pytest.raises(TypeError, match=r"got str; use pgqueue\.wait_for_result_async"):
            pgqueue.wait_for_result(clean_db, job)  # type: ignore[arg-type]


def test_wait_for_result_falls_back_to_polling_and_wildcard_payloads(clean_db: str) -> None:
    """Ends that are not announced are found by the periodic look; '*' wakes every waiter."""
    quiet = enqueue(clean_db, "nobody.runs.this", delay=3600)
    loud = enqueue(clean_db, "nobody.runs.this", delay=3600)

    def finish_quietly(waiter_pid: int, job: int, notify: bool) -> None:
        # Once the waiter has looked at the job (queued) and waits.
        wait_until(lambda: idle_after(clean_db, waiter_pid, "job_result_get"), timeout=60,
                   message="the waiter to wait")
        with psycopg.connect(clean_db, autocommit=True) as other:
            # Moves the job to history as cancelled without any notification.
            other.execute("SELECT pgqueue.cancel_queued(ARRAY[%s]::bigint[], ARRAY['gone'])",
                          [job])
            if notify:
                other.execute("SELECT pg_notify('pgqueue_finished', '*')")

    with psycopg.connect(clean_db, autocommit=True) as conn:
        pid = conn.info.backend_pid
        threading.Thread(target=finish_quietly, args=(pid, quiet, False), daemon=True).start()
        started = time.monotonic()
        with pytest.raises(pgqueue.JobFailedError, match="ended cancelled"):
            pgqueue.wait_for_result(conn, quiet, timeout=120, poll_interval=0.2)
        # Found by a look every 0.2 s, long before the timeout's last look.
        assert time.monotonic() - started < 60

        threading.Thread(target=finish_quietly, args=(pid, loud, True), daemon=True).start()
        started = time.monotonic()
        with pytest.raises(pgqueue.JobFailedError):
            pgqueue.wait_for_result(conn, loud, timeout=120, poll_interval=60)
        # Woken by '*', not by the look after 60 s.
        assert time.monotonic() - started < 30
