"""Tasks for the database restart tests' ``pgqueue worker`` subprocess.

Each run appends its job id, one per line, to the file named by
``PGQUEUE_TEST_RUNS_FILE``, so the test sees which jobs ran and how often.
"""

from __future__ import annotations

import asyncio
import os

import pgqueue

tasks = pgqueue.Registry()


@tasks.task(name="restart.work", queue="restart")
async def work(n: int, ctx: pgqueue.JobContext) -> None:
    await asyncio.sleep(0.005)
    _record(ctx.id)


def _record(job_id: int) -> None:
    path = os.environ["PGQUEUE_TEST_RUNS_FILE"]
    # One short write per line with O_APPEND: lines from concurrent runs never mix.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{job_id}\n".encode())
    finally:
        os.close(fd)
