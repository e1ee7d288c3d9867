"""What a worker logs about finished jobs: a summary per queue at INFO, a line per
succeeded job only at DEBUG, and retries and failures one by one at every level."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.errors import ConfigError
from pgqueue.observability.log_summary import OUTCOMES, QueueSummary
from tests.support import RunningWorker, running_worker, scalar, wait_until

SUMMARY_KEYS = {"worker_id", "event", "queue", *OUTCOMES, "duration_ms_mean",
                "duration_ms_max", "interval_seconds"}


def _registry(first: str, second: str) -> pgqueue.Registry:
    tasks = pgqueue.Registry()

    @tasks.task(name="s.ok", queue=first)
    def ok() -> None:
        return None

    @tasks.task(name="s.flaky", queue=first, max_attempts=2,
                retry=pgqueue.RetryPolicy(base_seconds=0.01, max_seconds=0.01))
    def flaky(ctx: pgqueue.JobContext) -> None:
        if ctx.attempt == 1:
            raise ValueError("first attempt fails")

    @tasks.task(name="s.broken", queue=first)
    def broken() -> None:
        raise pgqueue.PermanentError("never works")

    @tasks.task(name="s.other", queue=second)
    async def other() -> None:
        return None

    return tasks


def _enqueue(dsn: str, first: str, second: str) -> None:
    with psycopg.connect(dsn) as conn:
        pgqueue.enqueue_many(conn, [{"task": "s.ok", "queue": first}] * 5)
        pgqueue.enqueue(conn, "s.flaky", queue=first)
        pgqueue.enqueue(conn, "s.broken", queue=first)
        pgqueue.enqueue_many(conn, [{"task": "s.other", "queue": second}] * 3)


def _all_finished(dsn: str) -> bool:
    return bool(scalar(dsn, "SELECT count(*) FROM pgqueue.finished_jobs") == 10)


def _summaries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "jobs finished"]


def _totals(records: list[logging.LogRecord]) -> dict[str, Counter[str]]:
    """Each queue's counts over its summary lines (a burst may span two intervals)."""
    totals: dict[str, Counter[str]] = {}
    for record in records:
        fields: dict[str, Any] = vars(record)
        totals.setdefault(fields["queue"], Counter()).update(
            {outcome: fields[outcome] for outcome in OUTCOMES})
    return totals


EXPECTED = {"succeeded": 6, "retried": 1, "failed": 1, "cancelled": 0}


def _queues() -> tuple[str, str]:
    return f"sa{uuid.uuid4().hex[:8]}", f"sb{uuid.uuid4().hex[:8]}"


@contextmanager
def _draining(dsn: str, caplog: pytest.LogCaptureFixture, level: int, interval: float,
              **options: Any) -> Iterator[tuple[RunningWorker, str, str]]:
    """A logging worker on two fresh queues at ``level``, once all ten jobs finished."""
    first, second = _queues()
    caplog.set_level(level, logger="pgqueue")
    with running_worker(dsn, _registry(first, second), log_events=True,
                        log_summary_interval=interval, **options) as w:
        _enqueue(dsn, first, second)
        wait_until(lambda: _all_finished(dsn), timeout=60, message="every job finished")
        yield w, first, second


def test_info_logs_a_summary_per_queue_with_the_counts_and_each_failure(
        clean_db: str, caplog: pytest.LogCaptureFixture) -> None:
    with _draining(clean_db, caplog, logging.INFO, 0.2, concurrency=4) as (w, first, second):
        # The timer logs the last interval while the worker still runs.
        wait_until(lambda: _totals(_summaries(caplog)).get(second, {}).get("succeeded") == 3
                   and sum(_totals(_summaries(caplog)).get(first, Counter()).values()) == 8,
                   timeout=30, message="summary lines for every finished job")
        summaries = _summaries(caplog)
        assert len(w.finished()) == 11  # ten jobs, one of them twice
    totals = _totals(summaries)
    assert totals[first] == Counter(EXPECTED)
    assert totals[second] == Counter({"succeeded": 3, "retried": 0, "failed": 0,
                                      "cancelled": 0})
    for record in summaries:
        fields = vars(record)
        assert record.levelno == logging.INFO and record.name == "pgqueue.worker"
        assert set(fields) >= SUMMARY_KEYS, SUMMARY_KEYS - set(fields)
        assert fields["event"] == "jobs_finished" and fields["worker_id"] == w.worker.id
        assert 0 <= fields["duration_ms_mean"] <= fields["duration_ms_max"]
        assert fields["interval_seconds"] >= 0
    messages = [r.getMessage() for r in caplog.records]
    # No line per succeeded job at INFO; a line per retry and per failure.
    assert "job succeeded" not in messages
    retried = [r for r in caplog.records if r.getMessage() == "job failed; will retry"]
    failed = [r for r in caplog.records if r.getMessage() == "job failed"]
    assert [(r.levelno, vars(r)["task"]) for r in retried] == [(logging.WARNING, "s.flaky")]
    assert [(r.levelno, vars(r)["task"]) for r in failed] == [(logging.ERROR, "s.broken")]
    # Nothing left to count: the stop adds no summary line.
    assert len(_summaries(caplog)) == len(summaries)
    assert messages[-1] == "worker stopped"


def test_the_stop_logs_what_is_counted_before_worker_stopped(
        clean_db: str, caplog: pytest.LogCaptureFixture) -> None:
    with _draining(clean_db, caplog, logging.INFO, 3600) as (_, first, second):
        assert not _summaries(caplog)  # the hour has not passed
    summaries = _summaries(caplog)
    assert sorted(vars(r)["queue"] for r in summaries) == sorted([first, second])
    assert _totals(summaries)[first] == Counter(EXPECTED)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[-1] == "worker stopped"
    assert messages.index("jobs finished") < messages.index("worker stopped")


def test_debug_logs_a_line_per_succeeded_job(clean_db: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with _draining(clean_db, caplog, logging.DEBUG, 3600) as (w, first, second):
        wait_until(lambda: len(w.finished("succeeded")) == 9, message="nine successes")
    done = [r for r in caplog.records if r.getMessage() == "job succeeded"]
    assert all(r.levelno == logging.DEBUG for r in done)
    ids = {vars(r)["job_id"] for r in done}
    assert ids == {e.job.id for e in w.finished("succeeded")}
    assert Counter(vars(r)["queue"] for r in done) == {first: 6, second: 3}
    for record in done:
        fields = vars(record)
        assert fields["outcome"] == "succeeded" and fields["duration_ms"] >= 0
        assert fields["event"] == "job_finished" and fields["attempt"] in (1, 2)
    # The summary is logged at DEBUG too (its level is INFO).
    assert _totals(_summaries(caplog))[second]["succeeded"] == 3


def test_warning_logs_no_summary(clean_db: str, caplog: pytest.LogCaptureFixture) -> None:
    with _draining(clean_db, caplog, logging.WARNING, 0.1):
        pass
    assert not _summaries(caplog)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] \
        .count("job failed; will retry") == 1


@pytest.mark.parametrize("interval", [-1, float("nan"), float("inf"), "30"])
def test_a_bad_summary_interval_is_refused(clean_db: str, interval: Any) -> None:
    with pytest.raises(ValueError, match="log_summary_interval"):
        QueueSummary(interval)
    with pytest.raises(ConfigError, match="log_summary_interval"):
        pgqueue.Worker(_registry("a", "b"), dsn=clean_db, log_summary_interval=interval)
