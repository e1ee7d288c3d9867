"""ctx.transaction(): a handler's writes and its job's outcome commit together, or
vanish together (pgqueue/worker/transactional.py), on a real worker."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from tests.support import fetch, history, running_worker, scalar, wait_until

FAST_RETRY = pgqueue.RetryPolicy(base_seconds=0.05, max_seconds=0.2, jitter=0)
BUMP = ("INSERT INTO tx_counters (job_id, n) VALUES (%s, 1) "
        "ON CONFLICT (job_id) DO UPDATE SET n = tx_counters.n + 1")


@pytest.fixture
def counters(clean_db: str) -> str:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS tx_counters "
                     "(job_id bigint PRIMARY KEY, n integer NOT NULL)")
        conn.execute("TRUNCATE tx_counters")
    return clean_db


def enqueue(dsn: str, task: str, **options: Any) -> int:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue(conn, task, {}, **options)


def counter(dsn: str, job_id: int) -> int | None:
    rows = fetch(dsn, "SELECT n FROM tx_counters WHERE job_id = %s", [job_id])
    return rows[0][0] if rows else None


def bumping_tasks(*, fail_first: bool = False) -> pgqueue.Registry:
    """``t.async`` and ``t.sync`` bump their job's counter in ctx.transaction(),
    and raise after the write on the first attempt when ``fail_first``."""
    tasks = pgqueue.Registry()

    @tasks.task(name="t.async", retry=FAST_RETRY, max_attempts=3)
    async def bump_async(ctx: pgqueue.JobContext) -> dict[str, int]:
        async with ctx.transaction() as conn:
            await conn.execute(BUMP, [ctx.id])
            if fail_first and ctx.attempt == 1:
                raise RuntimeError("after the write")
        return {"attempt": ctx.attempt}

    @tasks.task(name="t.sync", retry=FAST_RETRY, max_attempts=3)
    def bump_sync(ctx: pgqueue.JobContext) -> dict[str, int]:
        with ctx.transaction() as conn:
            conn.execute(BUMP, [ctx.id])
            if fail_first and ctx.attempt == 1:
                raise RuntimeError("after the write")
        return {"attempt": ctx.attempt}

    return tasks


@pytest.mark.parametrize("task", ["t.async", "t.sync"])
def test_writes_and_outcome_commit_together(counters: str, task: str) -> None:
    with running_worker(counters, bumping_tasks()) as w:
        job = enqueue(counters, task)
        wait_until(lambda: w.finished("succeeded"), message="the job's success")
    assert history(counters, job)["state"] == "succeeded"
    assert history(counters, job)["result"] == {"attempt": 1}
    assert counter(counters, job) == 1
    # One commit: the counter row and the history row carry the same transaction id.
    assert scalar(counters, "SELECT xmin::text FROM tx_counters WHERE job_id = %s", [job]) \
        == scalar(counters, "SELECT xmin::text FROM pgqueue.finished_jobs WHERE id = %s", [job])
    # The handler's connection was the pool's, on the worker's DSN.
    assert not w.of(events.JobLost)


@pytest.mark.parametrize("task", ["t.async", "t.sync"])
def test_a_handler_that_raises_after_writing_leaves_nothing_and_retries(
        counters: str, task: str) -> None:
    with running_worker(counters, bumping_tasks(fail_first=True)) as w:
        job = enqueue(counters, task)
        wait_until(lambda: w.finished("succeeded"), message="the retry's success")
    done = history(counters, job)
    assert done["state"] == "succeeded" and done["attempt"] == 2
    assert [e["kind"] for e in done["errors"]] == ["error"]
    assert "after the write" in done["errors"][0]["message"]
    assert counter(counters, job) == 1  # the first attempt's write was rolled back
    assert [e.outcome for e in w.finished()] == ["retried", "succeeded"]


def reclaim_by_hand(dsn: str, job_id: int) -> tuple[Any, ...]:
    """What the reaper and another worker's claim do to a row, done by hand."""
    rows = fetch(dsn, "UPDATE pgqueue.jobs SET worker_id = gen_random_uuid(), "
                      "claim_token = claim_token + 1000000, heartbeat_at = now() "
                      "WHERE id = %s AND state = 'running' "
                      "RETURNING state::text, worker_id, claim_token, attempt, xmin::text",
                 [job_id])
    assert len(rows) == 1, rows
    return rows[0]


def live_row(dsn: str, job_id: int) -> tuple[Any, ...]:
    rows = fetch(dsn, "SELECT state::text, worker_id, claim_token, attempt, xmin::text "
                      "FROM pgqueue.jobs WHERE id = %s", [job_id])
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_stale_attempt_rolls_back_its_writes_and_touches_nothing(
        counters: str, kind: str) -> None:
    tasks = pgqueue.Registry()
    inside = threading.Event()
    reclaimed = threading.Event()

    @tasks.task(name="t.async")
    async def stale_async(ctx: pgqueue.JobContext) -> str:
        async with ctx.transaction() as conn:
            await conn.execute(BUMP, [ctx.id])
            inside.set()
            await asyncio.to_thread(reclaimed.wait, 30)
        return "done"

    @tasks.task(name="t.sync")
    def stale_sync(ctx: pgqueue.JobContext) -> str:
        with ctx.transaction() as conn:
            conn.execute(BUMP, [ctx.id])
            inside.set()
            reclaimed.wait(30)
        return "done"

    with running_worker(counters, tasks, stall_timeout=60) as w:
        job = enqueue(counters, f"t.{kind}")
        assert inside.wait(30)
        row = reclaim_by_hand(counters, job)
        reclaimed.set()
        lost = wait_until(lambda: w.of(events.JobLost), message="the stale attempt's end")
        after = live_row(counters, job)
    assert lost[0].effects == "rolled_back" and lost[0].job.id == job
    assert not w.finished()
    assert after == row  # the row another attempt holds is untouched
    assert counter(counters, job) is None  # the handler's write vanished
    assert scalar(counters, "SELECT count(*) FROM pgqueue.finished_jobs") == 0


def test_a_timed_out_or_interrupted_attempt_rolls_back(counters: str) -> None:
    tasks = pgqueue.Registry()
    hold = threading.Event()

    @tasks.task(name="t.slow", timeout=0.3, retry=FAST_RETRY, max_attempts=2)
    async def slow(ctx: pgqueue.JobContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(BUMP, [ctx.id])
            await asyncio.sleep(30)

    @tasks.task(name="t.held")
    async def held(ctx: pgqueue.JobContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(BUMP, [ctx.id])
            hold.set()
            await asyncio.sleep(60)

    with running_worker(counters, tasks, shutdown_timeout=0.2) as w:
        timed_out = enqueue(counters, "t.slow", max_attempts=2)
        wait_until(lambda: any(e.outcome == "failed" for e in w.finished()),
                   message="two timeouts")
        interrupted = enqueue(counters, "t.held")
        assert hold.wait(30)
    # Stopped with the second inside its transaction: handed back, its write gone.
    assert history(counters, timed_out)["state"] == "failed"
    errors = history(counters, timed_out)["errors"]
    assert [(e["kind"], e["attempt"]) for e in errors] == [("timeout", 1), ("timeout", 2)], errors
    assert history(counters, interrupted)["state"] == "queued"
    assert counter(counters, timed_out) is None and counter(counters, interrupted) is None
    assert scalar(counters, "SELECT count(*) FROM pg_stat_activity "
                            "WHERE application_name = 'pgqueue-handler'") == 0


def test_bad_use_is_refused_clearly(counters: str) -> None:
    tasks = pgqueue.Registry()
    seen: dict[str, str] = {}

    def refused(label: str, exc: BaseException) -> None:
        assert isinstance(exc, pgqueue.TransactionUseError), exc
        seen[label] = str(exc)

    @tasks.task(name="t.async")
    async def misuse_async(ctx: pgqueue.JobContext) -> None:
        try:
            with ctx.transaction():
                pass
        except pgqueue.TransactionUseError as exc:
            refused("with in async", exc)
        async with ctx.transaction() as conn:
            await conn.execute(BUMP, [ctx.id])
            for label, attempt in (("commit", conn.commit), ("rollback", conn.rollback)):
                try:
                    await attempt()
                except pgqueue.TransactionUseError as exc:
                    refused(label, exc)
        try:
            async with ctx.transaction():
                pass
        except pgqueue.TransactionUseError as exc:
            refused("twice", exc)
        try:
            await conn.execute("SELECT 1")
        except pgqueue.TransactionUseError as exc:
            refused("after", exc)

    @tasks.task(name="t.sync")
    def misuse_sync(ctx: pgqueue.JobContext) -> None:
        with ctx.transaction() as conn:
            conn.execute(BUMP, [ctx.id])
            try:
                conn.autocommit = True
            except pgqueue.TransactionUseError as exc:
                refused("autocommit", exc)
        try:
            conn.execute("SELECT 1")
        except pgqueue.TransactionUseError as exc:
            refused("sync after", exc)

    with running_worker(counters, tasks) as w:
        jobs = [enqueue(counters, "t.async"), enqueue(counters, "t.sync")]
        wait_until(lambda: len(w.finished("succeeded")) == 2, message="both jobs")
    assert sorted(seen) == ["after", "autocommit", "commit", "rollback", "sync after",
                            "twice", "with in async"]
    assert "once per attempt" in seen["twice"]
    assert "after its block" in seen["after"] and "after its block" in seen["sync after"]
    assert "async with" in seen["with in async"]
    assert [counter(counters, j) for j in jobs] == [1, 1]  # the misuse changed nothing


def test_a_context_without_a_worker_refuses() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    ctx = pgqueue.JobContext(pgqueue.Job(1, "q", "t", {}, 0, 1, 1, now, now, now), "w")
    with pytest.raises(pgqueue.TransactionUseError, match="needs a worker"):
        ctx.transaction()


def test_plain_handlers_open_no_handler_connection(counters: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="t.plain")
    def plain() -> int:
        return 1

    with running_worker(counters, tasks) as w:
        for _ in range(5):
            enqueue(counters, "t.plain")
        wait_until(lambda: len(w.finished("succeeded")) == 5, message="five jobs")
        assert scalar(counters, "SELECT count(*) FROM pg_stat_activity "
                                "WHERE application_name = 'pgqueue-handler'") == 0


def test_savepoints_nest_and_sql_that_ends_the_transaction_is_caught(counters: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="t.savepoint")
    async def savepoint(ctx: pgqueue.JobContext) -> None:
        async with ctx.transaction() as conn:
            async with conn.transaction():  # first thing in the block: still a savepoint
                await conn.execute(BUMP, [ctx.id])
            try:
                async with conn.transaction():
                    await conn.execute(BUMP, [ctx.id])
                    raise ValueError("undo this part")
            except ValueError:
                pass

    @tasks.task(name="t.commits_itself", retry=FAST_RETRY, max_attempts=2)
    def commits_itself(ctx: pgqueue.JobContext) -> None:
        with ctx.transaction() as conn:
            if ctx.attempt == 1:
                conn.execute("COMMIT")

    @tasks.task(name="t.caught_error", retry=FAST_RETRY, max_attempts=2)
    async def caught_error(ctx: pgqueue.JobContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(BUMP, [ctx.id])
            if ctx.attempt == 1:
                try:
                    await conn.execute("SELECT 1 / 0")
                except psycopg.errors.DivisionByZero:
                    pass  # the transaction is aborted: the outcome cannot join it

    with running_worker(counters, tasks) as w:
        nested = enqueue(counters, "t.savepoint")
        itself = enqueue(counters, "t.commits_itself")
        caught = enqueue(counters, "t.caught_error")
        wait_until(lambda: len(w.finished("succeeded")) == 3, message="three successes")
    # The released savepoint, not the rolled-back one (its row's xmin is the
    # savepoint's subtransaction, so the one-commit check is the first test's).
    assert counter(counters, nested) == 1
    for job, why in ((itself, "ended the transaction"), (caught, "InFailedSqlTransaction")):
        done = history(counters, job)
        assert done["state"] == "succeeded" and done["attempt"] == 2, done
        assert done["errors"][0]["kind"] == "transaction", done
        assert why in done["errors"][0]["message"], done
    assert counter(counters, caught) == 1


def test_a_committed_dependency_releases_its_dependent(counters: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="t.first")
    async def first(ctx: pgqueue.JobContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(BUMP, [ctx.id])

    @tasks.task(name="t.second")
    def second() -> str:
        return "after"

    with running_worker(counters, tasks) as w:
        with psycopg.connect(counters) as conn:
            before = pgqueue.enqueue(conn, "t.first", {}, run_at=None)
            after = pgqueue.enqueue(conn, "t.second", {}, depends_on=[before])
        wait_until(lambda: len(w.finished("succeeded")) == 2, message="both jobs")
    assert history(counters, after)["result"] == "after"
    assert counter(counters, before) == 1


def test_the_heartbeat_goes_on_while_the_transaction_runs(counters: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="t.long")
    async def long(ctx: pgqueue.JobContext) -> None:
        async with ctx.transaction() as conn:
            await conn.execute(BUMP, [ctx.id])
            await asyncio.sleep(2.5)  # past the stall timeout (1.5 s)

    with running_worker(counters, tasks, stall_timeout=1.5) as w:
        job = enqueue(counters, "t.long")
        wait_until(lambda: w.finished("succeeded"), message="the long job")
    done = history(counters, job)
    assert done["attempt"] == 1 and done["errors"] == [], done  # never reclaimed
    assert counter(counters, job) == 1


SLOW_COMMIT = """
CREATE TABLE IF NOT EXISTS tx_slow_commit (job_id bigint);
CREATE OR REPLACE FUNCTION tx_slow_commit_wait() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS tx_slow_commit_wait ON tx_slow_commit;
CREATE CONSTRAINT TRIGGER tx_slow_commit_wait AFTER INSERT ON tx_slow_commit
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tx_slow_commit_wait();
"""


def test_a_connection_lost_during_commit_leaves_the_job_to_the_reaper(counters: str) -> None:
    with psycopg.connect(counters, autocommit=True) as conn:
        conn.execute(SLOW_COMMIT)
    tasks = pgqueue.Registry()

    @tasks.task(name="t.cut")
    async def cut(ctx: pgqueue.JobContext) -> int:
        async with ctx.transaction() as conn:
            await conn.execute(BUMP, [ctx.id])
            if ctx.attempt == 1:  # its COMMIT waits in a deferred trigger, and is cut there
                await conn.execute("INSERT INTO tx_slow_commit VALUES (%s)", [ctx.id])
        return ctx.attempt

    try:
        with running_worker(counters, tasks, stall_timeout=1.5) as w:
            job = enqueue(counters, "t.cut")
            pid = wait_until(lambda: scalar(
                counters, "SELECT max(pid) FROM pg_stat_activity WHERE application_name = "
                          "'pgqueue-handler' AND query = 'COMMIT' AND wait_event = 'PgSleep'"),
                message="the COMMIT waiting")
            assert scalar(counters, "SELECT pg_terminate_backend(%s)", [pid])
            wait_until(lambda: w.finished("succeeded"), message="the retry after the reaper")
        lost = w.of(events.JobLost)
        assert [(e.job.id, e.effects) for e in lost] == [(job, "unknown")]
        done = history(counters, job)
        assert done["attempt"] == 2 and done["result"] == 2, done
        assert [e["kind"] for e in done["errors"]] == ["stalled"], done
        assert counter(counters, job) == 1  # the cut commit's bump never landed
    finally:
        with psycopg.connect(counters, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS tx_slow_commit")
