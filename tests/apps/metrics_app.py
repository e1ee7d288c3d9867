"""Tasks for the Prometheus test: a queue whose jobs only succeed, and one with
retries and failures (``fail_attempts``: how many attempts raise)."""

from __future__ import annotations

import time

import pgqueue

tasks = pgqueue.Registry()

FAST_RETRY = pgqueue.RetryPolicy(base_seconds=0.05, max_seconds=0.1, jitter=0)


@tasks.task(name="mx.ok", queue="mx_fine")
def ok(seconds: float) -> None:
    time.sleep(seconds)


@tasks.task(name="mx.flaky", queue="mx_mixed", max_attempts=2, retry=FAST_RETRY)
def flaky(fail_attempts: int, ctx: pgqueue.JobContext) -> None:
    time.sleep(0.05)
    if ctx.attempt <= fail_attempts:
        raise ValueError("planned failure")
