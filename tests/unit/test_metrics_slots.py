"""pgqueue_worker_busy_slots counts attempts in their slots: an attempt whose
outcome is still being written no longer holds its slot, so the gauge never
exceeds the worker's slots. And the leader's read interval setting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pgqueue import events
from pgqueue.observability import metrics, queue_metrics
from pgqueue.types import Job


def busy() -> float:
    return REGISTRY.get_sample_value("pgqueue_worker_busy_slots") or 0.0


def job(job_id: int) -> Job:
    now = datetime.now(UTC)
    return Job(job_id, "slotq", "s.task", {}, 0, 1, 3, now, now, now)


def test_a_slot_is_free_when_its_attempt_ends_not_when_its_outcome_is_written() -> None:
    observer = metrics.WorkerMetrics()
    before = busy()
    observer(events.WorkerStarted("w", ("slotq",), 1))
    try:
        first, second = job(1), job(2)
        observer(events.JobStarted("w", first))
        assert busy() == before + 1
        observer(events.AttemptEnded("w", first))  # the outcome goes to the completer
        observer(events.JobStarted("w", second))  # and the next job takes the slot
        assert busy() == before + 1
        observer(events.JobFinished("w", first, "succeeded", 0.1))  # written later
        assert busy() == before + 1
        observer(events.AttemptEnded("w", second))
        observer(events.JobLost("w", second, "succeeded"))
        assert busy() == before
        # The same job started again (a retry) counts once per attempt.
        observer(events.JobStarted("w", first))
        observer(events.JobFinished("w", first, "retried", 0.1))
        assert busy() == before + 1
    finally:
        observer(events.WorkerStopped("w"))
    assert busy() == before


def test_the_leaders_read_interval_comes_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.delenv(queue_metrics.STATS_INTERVAL_ENV, raising=False)
    assert queue_metrics.stats_interval_from_env() == 15.0
    monkeypatch.setenv(queue_metrics.STATS_INTERVAL_ENV, "2.5")
    assert queue_metrics.stats_interval_from_env() == 2.5
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv(queue_metrics.STATS_INTERVAL_ENV, bad)
        with pytest.raises(ValueError, match="PGQUEUE_METRICS_STATS_INTERVAL"):
            metrics.WorkerMetrics()


def test_a_workers_tasks_have_every_series_at_zero_from_its_start() -> None:
    def sample(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"queue": "zq", "task": "z.task"})

    assert sample("pgqueue_jobs_failed_total") is None
    observer = metrics.WorkerMetrics()
    observer(events.WorkerStarted("w", ("zq",), 1, (("zq", "z.task"),)))
    try:
        for name in ("started", "succeeded", "retried", "failed", "cancelled", "reclaimed",
                     "lost"):
            assert sample(f"pgqueue_jobs_{name}_total") == 0, name
        assert sample("pgqueue_job_duration_seconds_count") == 0
        assert REGISTRY.get_sample_value("pgqueue_service_errors_total",
                                         {"service": "scheduler"}) is not None
    finally:
        observer(events.WorkerStopped("w"))
