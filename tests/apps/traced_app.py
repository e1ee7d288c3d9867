"""Tasks for the tracing test: a sync handler with a span of its own and a query."""

from __future__ import annotations

import os

import psycopg
from opentelemetry import trace

import pgqueue

tasks = pgqueue.Registry()

FAST_RETRY = pgqueue.RetryPolicy(base_seconds=0.01, max_seconds=0.05, jitter=0)


@tasks.task(name="traced.work", queue="traced", retry=FAST_RETRY)
def work(ctx: pgqueue.JobContext) -> int:
    """Fails its first attempt; then reads the database inside a span of its own."""
    with trace.get_tracer("tests.traced_app").start_as_current_span("render"):
        if ctx.attempt == 1:
            raise ValueError("first attempt fails")
        with psycopg.connect(os.environ["PGQUEUE_DSN"]) as conn:
            conn.execute("SELECT 1").fetchall()
    return ctx.attempt
