"""Tasks for the tests that run workers through PgBouncer.

``pool.work`` asks for one retry on its first attempt when ``retry`` is set and
returns ``n``; every attempt is counted in :data:`ATTEMPTS` and tracked in
:data:`INFLIGHT` by job id, so an in-process test sees whether an attempt of a
job ever ran while another one of the same job did.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pgqueue
from tests.support import Inflight

tasks = pgqueue.Registry()

INFLIGHT = Inflight()
ATTEMPTS: Counter[int] = Counter()
_LOCK = threading.Lock()


def _attempt(ctx: pgqueue.JobContext, retry: bool) -> None:
    with _LOCK:
        ATTEMPTS[ctx.id] += 1
    if retry and ctx.attempt == 1:
        raise pgqueue.Retry(0.05, "the first attempt asks for another")


@tasks.task(name="pool.work", queue="pool", max_attempts=3)
def work(n: int, retry: bool, ctx: pgqueue.JobContext) -> int:
    INFLIGHT.enter(str(ctx.id))
    try:
        _attempt(ctx, retry)
        return n
    finally:
        INFLIGHT.leave(str(ctx.id))


@tasks.task(name="pool.work_async", queue="pool", max_attempts=3)
async def work_async(n: int, retry: bool, ctx: pgqueue.JobContext) -> int:
    INFLIGHT.enter(str(ctx.id))
    try:
        await asyncio.sleep(0)
        _attempt(ctx, retry)
        return n
    finally:
        INFLIGHT.leave(str(ctx.id))
