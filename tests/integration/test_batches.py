"""Batches end to end with real workers: counts, the callback exactly once, sealing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.support import running_worker, scalar, wait_until


@pytest.fixture
def batch_db(clean_db: str) -> Iterator[str]:
    """The emptied session database, without batches before or after the test.

    A batch left sealed and unfinished would be finished by a later test's
    leader, enqueueing its callback there.
    """
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.job_batches")
    yield clean_db
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.finished_jobs, pgqueue.job_batches")


def info(dsn: str, batch_id: int) -> pgqueue.BatchInfo:
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = pgqueue.get_batch(conn, batch_id)
    assert found is not None
    return found


def leader_rounds(dsn: str, rounds: int) -> None:
    """Wait until the leader has renewed its lease ``rounds`` times from now.

    It renews it on every maintenance round and sweeps (settles batches and
    dependents) every reaper interval: with the tests' settings (heartbeat 0.2 s,
    reaper 0.5 s) 6 rounds hold at least two sweeps, however slow they come.
    """
    seen: set[Any] = set()

    def renewed() -> bool:
        seen.add(scalar(dsn, "SELECT expires_at FROM pgqueue.leader WHERE name = 'maintenance'"))
        return len(seen - {None}) > rounds

    wait_until(renewed, timeout=120, interval=0.05, message=f"{rounds} leader rounds")


def callback_registry(calls: list[dict[str, Any]], name: str = "b.done") -> pgqueue.Registry:
    tasks = pgqueue.Registry()
    lock = threading.Lock()

    @tasks.task(name=name, queue="callbacks")
    def done(**args: Any) -> None:
        with lock:
            calls.append(args)

    @tasks.task(name="b.noop")
    async def noop(n: int = 0) -> int:
        return n

    return tasks


def test_ten_thousand_jobs_with_failures_and_cancellations_two_workers(batch_db: str) -> None:
    calls: list[dict[str, Any]] = []
    tasks = callback_registry(calls)

    @tasks.task(name="b.work")
    async def work(n: int) -> dict[str, int]:
        if n % 50 == 7:
            raise pgqueue.PermanentError(f"offer {n} is gone")
        return {"n": n}

    total = 10_000
    with psycopg.connect(batch_db) as conn, \
            pgqueue.batch(conn, name="offers", callback=tasks["b.done"],
                          callback_args={"report": "offers"}) as b:
        # Every insert path: COPY (no unique keys), the unnest insert (unique
        # keys) and the SQL function (one job).
        first = pgqueue.enqueue_many(conn, ({"task": "b.work", "args": {"n": n}}
                                            for n in range(6_000)), batch=b)
        second = b.enqueue_many({"task": "b.work", "args": {"n": n}, "unique_key": f"u{n}"}
                                for n in range(6_000, total - 1))
        last = b.enqueue("b.work", {"n": total - 1})
        batch_id = b.id
        ids = [*first, *second, last]
    assert len(set(ids)) == total
    by_n = dict(enumerate(ids))
    # Cancel some before any worker runs (a queued job ends cancelled at once).
    cancelled = [n for n in range(total) if n % 97 == 3]
    with psycopg.connect(batch_db, autocommit=True) as conn:
        for n in cancelled:
            assert pgqueue.cancel(conn, by_n[n]) is pgqueue.CancelResult.CANCELLED
    failing = [n for n in range(total) if n % 50 == 7 and n % 97 != 3]
    before = info(batch_db, batch_id)
    assert (before.total, before.pending, before.cancelled, before.finished) == \
        (total, total - len(cancelled), len(cancelled), False)
    assert before.sealed_at is not None and before.started_at is None

    queues = ["default", "callbacks"]
    with running_worker(batch_db, tasks, queues=queues, concurrency=50), \
            running_worker(batch_db, tasks, queues=queues, concurrency=50):
        wait_until(lambda: info(batch_db, batch_id).finished, timeout=600,
                   message="the batch to finish")
        wait_until(lambda: calls, timeout=60, message="the callback to run")
        # A few more sweeps of the leader and settles of late completions.
        leader_rounds(batch_db, 6)
    after = info(batch_db, batch_id)
    assert (after.total, after.succeeded, after.failed, after.cancelled, after.pending,
            after.running) == (total, total - len(failing) - len(cancelled), len(failing),
                               len(cancelled), 0, 0)
    assert after.done == total and after.started_at is not None
    assert after.finished_at is not None and after.finished_at >= after.started_at
    assert calls == [{"report": "offers", "batch_id": batch_id}]
    assert scalar(batch_db, "SELECT count(*) FROM pgqueue.all_jobs WHERE task = 'b.done'") == 1
    assert after.callback_job_id == scalar(
        batch_db, "SELECT id FROM pgqueue.finished_jobs WHERE task = 'b.done'")
    assert scalar(batch_db, "SELECT queue FROM pgqueue.finished_jobs WHERE task = 'b.done'") \
        == "callbacks"
    with psycopg.connect(batch_db, autocommit=True) as conn:
        assert pgqueue.result(conn, by_n[0]) == {"n": 0}
        with pytest.raises(pgqueue.JobFailedError, match="offer 7 is gone"):
            pgqueue.result(conn, by_n[7])
        view = conn.execute("SELECT total, succeeded, failed, cancelled, pending "
                            "FROM pgqueue.batches WHERE id = %s", [batch_id]).fetchone()
    assert view == (total, after.succeeded, len(failing), len(cancelled), 0)


def test_callback_fires_when_jobs_finished_before_the_seal(batch_db: str) -> None:
    calls: list[dict[str, Any]] = []
    tasks = callback_registry(calls)
    with running_worker(batch_db, tasks, queues=["default", "callbacks"]) as w, \
            psycopg.connect(batch_db) as conn:
        with pgqueue.batch(conn, callback="b.done", callback_queue="callbacks") as b:
            ids = b.enqueue_many([{"task": "b.noop", "args": {"n": n}} for n in range(3)])
            conn.commit()  # the jobs run while the batch is still open
            wait_until(lambda: len(w.finished("succeeded")) == 3, message="three jobs")
            open_batch = info(batch_db, b.id)
            assert (open_batch.succeeded, open_batch.pending) == (3, 0)
            assert open_batch.sealed_at is None and not open_batch.finished
        assert b.sealed
        conn.commit()
        wait_until(lambda: calls, timeout=60, message="the callback")
        assert info(batch_db, b.id).finished
    assert calls == [{"batch_id": b.id}]
    with psycopg.connect(batch_db, autocommit=True) as conn:
        assert [pgqueue.result(conn, i) for i in ids] == [0, 1, 2]


def test_empty_batch_finishes_at_its_seal(batch_db: str) -> None:
    calls: list[dict[str, Any]] = []
    tasks = callback_registry(calls)
    with psycopg.connect(batch_db) as conn, pgqueue.batch(conn, callback="b.done",
                                                          callback_args={"x": 1}) as b:
        pass
    empty = info(batch_db, b.id)
    assert (empty.total, empty.finished, empty.started_at) == (0, True, None)
    assert empty.callback_job_id is not None
    with running_worker(batch_db, tasks, queues=["default"]):
        wait_until(lambda: calls, timeout=60, message="the callback")
    assert calls == [{"x": 1, "batch_id": b.id}]


def test_rolled_back_batch_leaves_nothing(batch_db: str) -> None:
    with pytest.raises(RuntimeError, match="changed my mind"), \
            psycopg.connect(batch_db) as conn, pgqueue.batch(conn, callback="b.done") as b:
        b.enqueue_many([{"task": "b.noop", "args": {"n": n}} for n in range(100)])
        b.enqueue("b.noop")
        raise RuntimeError("changed my mind")
    assert not b.sealed
    assert scalar(batch_db, "SELECT count(*) FROM pgqueue.job_batches") == 0
    assert scalar(batch_db, "SELECT count(*) FROM pgqueue.all_jobs") == 0
    with psycopg.connect(batch_db) as conn:
        assert pgqueue.get_batch(conn, b.id) is None


def test_sealed_batches_take_no_jobs_and_bad_input_is_refused(batch_db: str) -> None:
    with psycopg.connect(batch_db) as conn:
        with pgqueue.batch(conn) as b:
            b.enqueue("b.noop")
        with pytest.raises(pgqueue.InvalidJobError, match=f"batch {b.id} is sealed"):
            b.enqueue("b.noop")
        with pytest.raises(pgqueue.InvalidJobError, match="is sealed"):
            pgqueue.enqueue_many(conn, [{"task": "b.noop"}], batch=b)
        assert b.seal() is False
        with pytest.raises(psycopg.errors.InvalidParameterValue,
                           match="does not exist or is sealed"):
            conn.execute("SELECT pgqueue.enqueue('b.noop', batch_id => %s)", [b.id])
        conn.rollback()
        with pytest.raises(pgqueue.InvalidJobError, match=r"opened with pgqueue\.batch"):
            pgqueue.enqueue(conn, "b.noop", batch=b.id)  # type: ignore[arg-type]
        with pytest.raises(pgqueue.InvalidJobError, match="do not pass batch="), \
                pgqueue.batch(conn) as other:
            other.enqueue("b.noop", batch=other)
        for kwargs, message in [
            ({"callback": "bad name!"}, "callback 'bad name!' is not a valid task name"),
            ({"callback": "cb", "callback_args": {"batch_id": 1}}, "must not hold 'batch_id'"),
            ({"callback_args": {"a": 1}}, "need a callback"),
            ({"callback": "cb", "callback_args": {"when": time}}, "callback_args: "),
            ({"callback": "cb", "callback_queue": "-x"}, "callback_queue"),
            ({"name": ""}, "name must be"),
        ]:
            with pytest.raises(pgqueue.InvalidJobError, match=message), \
                    pgqueue.batch(conn, **kwargs):
                pass
        conn.rollback()


def test_retried_job_does_not_reopen_a_finished_batch(batch_db: str) -> None:
    calls: list[dict[str, Any]] = []
    tasks = callback_registry(calls)
    attempts: list[int] = []

    @tasks.task(name="b.flaky")
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise pgqueue.PermanentError("first time")
        return "second time"

    with psycopg.connect(batch_db) as conn, pgqueue.batch(conn, callback="b.done") as b:
        job = b.enqueue("b.flaky")
    with running_worker(batch_db, tasks, queues=["default"]) as w:
        wait_until(lambda: calls, timeout=60, message="the callback")
        finished_at = info(batch_db, b.id).finished_at
        with psycopg.connect(batch_db, autocommit=True) as conn:
            assert pgqueue.retry(conn, job) is pgqueue.RetryOutcome.RETRIED
            assert pgqueue.wait_for_result(conn, job, timeout=60) == "second time"
        wait_until(lambda: len(w.finished("succeeded")) == 2, timeout=60, message="the retry")
        leader_rounds(batch_db, 6)  # leader sweeps come and go
    again = info(batch_db, b.id)
    assert again.finished_at == finished_at
    assert (again.succeeded, again.failed, again.pending) == (1, 0, 0)
    assert calls == [{"batch_id": b.id}]
    assert scalar(batch_db, "SELECT count(*) FROM pgqueue.all_jobs WHERE task = 'b.done'") == 1


def test_a_job_finishing_while_the_batch_is_being_sealed(batch_db: str) -> None:
    """The finisher waits for the sealer's commit, then finishes the batch itself."""
    with psycopg.connect(batch_db) as conn:
        with pgqueue.batch(conn, callback="b.done") as b:
            job = b.enqueue("b.noop", delay=3600)
            conn.commit()
            # Sealing in this open transaction: the job is live, so not finished.
        assert not info(batch_db, b.id).finished
        done = threading.Event()

        def finish() -> None:
            with psycopg.connect(batch_db, autocommit=True) as other:
                pgqueue.cancel(other, job)  # settles the batch, as a worker would
            done.set()

        threading.Thread(target=finish, daemon=True).start()
        wait_until(lambda: scalar(batch_db, "SELECT count(*) FROM pg_stat_activity "
                                            "WHERE wait_event_type = 'Lock' "
                                            "AND datname = current_database()"),
                   message="the finisher to wait for the seal")
        conn.commit()
    assert done.wait(60)
    sealed = info(batch_db, b.id)
    assert sealed.finished and sealed.cancelled == 1
    assert scalar(batch_db, "SELECT count(*) FROM pgqueue.jobs WHERE task = 'b.done'") == 1


def test_async_batches(batch_db: str) -> None:
    async def scenario() -> tuple[int, pgqueue.BatchInfo | None]:
        async with await psycopg.AsyncConnection.connect(batch_db) as aconn:
            async with pgqueue.batch_async(aconn, name="async", callback="b.done") as b:
                await b.enqueue("b.noop", {"n": 1})
                await b.enqueue_many([{"task": "b.noop", "args": {"n": 2}}])
                await pgqueue.enqueue_many_async(aconn, [{"task": "b.noop"}], batch=b)
                await pgqueue.enqueue_async(aconn, "b.noop", batch=b)
            await aconn.commit()
            return b.id, await pgqueue.get_batch_async(aconn, b.id)

    batch_id, found = asyncio.run(scenario())
    assert found is not None and (found.name, found.total, found.pending) == ("async", 4, 4)
    assert found.sealed_at is not None and not found.finished
    calls: list[dict[str, Any]] = []
    with running_worker(batch_db, callback_registry(calls), queues=["default", "callbacks"]):
        wait_until(lambda: calls, timeout=60, message="the callback")
    assert calls == [{"batch_id": batch_id}]
    with psycopg.connect(batch_db) as conn:
        listed = pgqueue.list_batches(conn)
        assert [x.id for x in listed] == [batch_id]
        assert listed[0].succeeded == 4
