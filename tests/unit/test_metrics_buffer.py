"""A worker's metric updates are added up on its loop and applied in bulk: a
collect from another thread (a scrape) sees every update recorded before it, the
timer applies the rest by itself, and nothing is applied twice."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from pgqueue import events
from pgqueue.observability import metrics
from pgqueue.observability.metrics_buffer import APPLY_DELAY_SECONDS
from pgqueue.types import Job

QUEUE, TASK = "bufq", "buf.task"
LABELS = {"queue": QUEUE, "task": TASK}


def job(job_id: int) -> Job:
    now = datetime.now(UTC)
    return Job(job_id, QUEUE, TASK, {}, 0, 1, 3, now - timedelta(seconds=2), now, now)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, LABELS) or 0.0


def test_a_scrape_from_another_thread_sees_what_the_loop_recorded() -> None:
    observer = metrics.WorkerMetrics()

    async def main() -> None:
        observer(events.WorkerStarted("w", (QUEUE,), 2, ((QUEUE, TASK),)))
        started = await asyncio.to_thread(sample, "pgqueue_jobs_started_total")
        waits = await asyncio.to_thread(sample, "pgqueue_job_queue_wait_seconds_count")
        assert (started, waits) == (0, 0)  # the series exist from the start, at 0
        observer(events.JobStarted("w", job(1)))
        observer(events.JobStarted("w", job(2)))
        observer(events.AttemptEnded("w", job(1)))
        observer(events.JobFinished("w", job(1), "succeeded", 0.02))
        # Collected on another thread, as the /metrics server does, before the timer.
        assert await asyncio.to_thread(sample, "pgqueue_jobs_started_total") == started + 2
        assert await asyncio.to_thread(sample, "pgqueue_job_queue_wait_seconds_count") \
            == waits + 2
        wait_le_1 = await asyncio.to_thread(
            REGISTRY.get_sample_value, "pgqueue_job_queue_wait_seconds_bucket",
            {**LABELS, "le": "1.0"})
        wait_le_5 = await asyncio.to_thread(
            REGISTRY.get_sample_value, "pgqueue_job_queue_wait_seconds_bucket",
            {**LABELS, "le": "2.5"})
        assert (wait_le_5 or 0) - (wait_le_1 or 0) == 2  # both waited 2 s
        busy = await asyncio.to_thread(REGISTRY.get_sample_value, "pgqueue_worker_busy_slots")
        assert busy is not None and busy >= 1

        # Without a collect, the timer applies by itself, once.
        succeeded = metrics.SUCCEEDED.labels(QUEUE, TASK)
        before = succeeded._value.get()
        observer(events.AttemptEnded("w", job(2)))
        observer(events.JobFinished("w", job(2), "succeeded", 0.01))
        deadline = time.monotonic() + 30
        while succeeded._value.get() == before and time.monotonic() < deadline:
            await asyncio.sleep(APPLY_DELAY_SECONDS / 10)
        assert succeeded._value.get() == before + 1
        observer(events.WorkerStopped("w"))

    asyncio.run(main())
    # Applied exactly once: after collects, the timer and the stop, the totals are
    # what was recorded (this test's task has no other series).
    assert sample("pgqueue_jobs_started_total") == 2
    assert sample("pgqueue_jobs_succeeded_total") == 2
    assert sample("pgqueue_job_duration_seconds_count") == 2
    assert 0.03 - 1e-9 <= sample("pgqueue_job_duration_seconds_sum") <= 0.03 + 1e-9


def test_outside_an_event_loop_updates_apply_at_once() -> None:
    observer = metrics.WorkerMetrics()
    before = sample("pgqueue_jobs_retried_total")
    observer(events.JobFinished("w", job(3), "retried", 0.01))
    assert metrics.RETRIED.labels(QUEUE, TASK)._value.get() == before + 1
