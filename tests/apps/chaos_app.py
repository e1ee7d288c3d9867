"""Tasks for the fault tests (tests/system/test_chaos.py and friends).

``chaos.work`` records every execution it starts -- job id, attempt, process id --
in the table ``chaos_runs`` of the database named by ``PGQUEUE_CHAOS_DSN``,
in autocommit, before it does its work. That row is the at-least-once witness:
a job with two rows ran twice, and the test must explain why.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import psycopg

import pgqueue

tasks = pgqueue.Registry()

WITNESS_DDL = """
CREATE TABLE IF NOT EXISTS chaos_runs (
    job_id  bigint NOT NULL,
    attempt integer NOT NULL,
    pid     integer NOT NULL,
    at      timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""

_local = threading.local()


def _witness() -> psycopg.Connection[tuple[object, ...]]:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(os.environ["PGQUEUE_CHAOS_DSN"], autocommit=True,
                               application_name="chaos-witness")
        _local.conn = conn
    return conn


def record(job_id: int, attempt: int) -> None:
    _witness().execute("INSERT INTO chaos_runs (job_id, attempt, pid) VALUES (%s, %s, %s)",
                       [job_id, attempt, os.getpid()])


@tasks.task(name="chaos.work", queue="chaos", max_attempts=25)
def work(n: int, ctx: pgqueue.JobContext, max_ms: int = 50) -> int:
    """Record the run, then take 0 to ``max_ms`` milliseconds."""
    record(ctx.id, ctx.attempt)
    if max_ms:
        time.sleep(random.uniform(0, max_ms) / 1000)
    return n


@tasks.task(name="chaos.nap", queue="chaos", max_attempts=25)
async def nap(seconds: float) -> None:
    await asyncio.sleep(seconds)


@tasks.task(name="chaos.strict", queue="chaos", max_attempts=1)
def strict(count: int) -> int:
    """Fails cleanly when ``count`` is not an integer."""
    return int(count) + 1


# --- exactly-once database effects (tests/system/test_chaos_transactional.py) -----

COUNTER_DDL = """
CREATE TABLE IF NOT EXISTS chaos_counters (
    job_id bigint PRIMARY KEY,
    n      integer NOT NULL
)
"""

_BUMP = ("INSERT INTO chaos_counters (job_id, n) VALUES (%s, 1) "
         "ON CONFLICT (job_id) DO UPDATE SET n = chaos_counters.n + 1")


def _unfenced() -> bool:
    """``PGQUEUE_CHAOS_UNFENCED=1``: bump the counter in a transaction of its own,
    committed before the outcome (at-least-once), to show the chaos test catches
    duplicates."""
    return os.environ.get("PGQUEUE_CHAOS_UNFENCED", "") not in ("", "0")


@tasks.task(name="chaos.count_async", queue="chaos", max_attempts=25)
async def count_async(ms: int, ctx: pgqueue.JobContext) -> int:
    """Bump this job's counter row in ctx.transaction(), then take ``ms`` in it."""
    if _unfenced():
        await asyncio.to_thread(_witness().execute, _BUMP, [ctx.id])
        await asyncio.sleep(ms / 1000)
        return ctx.attempt
    async with ctx.transaction() as conn:
        await conn.execute(_BUMP, [ctx.id])
        await asyncio.sleep(ms / 1000)
    return ctx.attempt


@tasks.task(name="chaos.count_sync", queue="chaos", max_attempts=25)
def count_sync(ms: int, ctx: pgqueue.JobContext) -> int:
    """The sync twin of ``chaos.count_async``, on a worker thread."""
    if _unfenced():
        _witness().execute(_BUMP, [ctx.id])
        time.sleep(ms / 1000)
        return ctx.attempt
    with ctx.transaction() as conn:
        conn.execute(_BUMP, [ctx.id])
        time.sleep(ms / 1000)
    return ctx.attempt
