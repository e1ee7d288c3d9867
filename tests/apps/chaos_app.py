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
