"""Tasks for tests that run `pgqueue worker` as a real subprocess."""

from __future__ import annotations

import os
import threading
import time

import pgqueue

tasks = pgqueue.Registry()


@tasks.task(name="app.hello", queue="app")
def hello(name: str) -> str:
    return f"hello {name}"


@tasks.task(name="app.slow_first", queue="app", max_attempts=5)
def slow_first(seconds: float, ctx: pgqueue.JobContext) -> dict[str, int]:
    """Sleeps on its first attempt only; reports which process ran it."""
    if ctx.attempt == 1:
        time.sleep(seconds)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@tasks.task(name="app.sleep", queue="app")
async def sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


# Set by a test running this registry in-process, to let a later attempt finish.
RELEASE = threading.Event()


@tasks.task(name="app.slow_then_held", queue="app", max_attempts=5)
def slow_then_held(seconds: float, ctx: pgqueue.JobContext) -> dict[str, int]:
    """Attempt 1 sleeps; later attempts wait until the test sets RELEASE."""
    if ctx.attempt == 1:
        time.sleep(seconds)
    else:
        RELEASE.wait(60)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@tasks.task(name="app.slow_every", queue="app", max_attempts=5)
def slow_every(seconds: float, ctx: pgqueue.JobContext) -> dict[str, int]:
    """Sleeps on every attempt; reports which process and attempt finished it."""
    time.sleep(seconds)
    return {"pid": os.getpid(), "attempt": ctx.attempt}
