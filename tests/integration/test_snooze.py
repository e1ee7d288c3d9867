"""Snooze: a job goes back to the queue after a delay without using an attempt."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

import pgqueue
from pgqueue import events
from pgqueue.cli import main
from pgqueue.testing import drain
from tests.support import cli_runner, fetch, running_worker, scalar, wait_until


def enqueue(dsn: str, task: str, **kw: Any) -> int:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue(conn, task, {}, **kw)


def row(dsn: str, job_id: int) -> tuple[Any, ...]:
    rows = fetch(dsn, "SELECT state::text, attempt, snoozes, last_error, errors "
                      "FROM pgqueue.all_jobs WHERE id = %s", [job_id])
    assert len(rows) == 1
    return rows[0]


def test_snoozing_keeps_the_attempts_and_counts_the_snoozes(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    seen: list[tuple[int, int]] = []

    @tasks.task(name="sz.twice", max_attempts=1)
    def twice(ctx: pgqueue.JobContext) -> str:
        seen.append((ctx.attempt, ctx.max_attempts))
        if len(seen) == 1:
            raise pgqueue.Snooze(0)
        if len(seen) == 2:
            return pgqueue.Snooze(timedelta(0))  # type: ignore[return-value]
        return "done"

    with running_worker(clean_db, tasks) as w:
        job_id = enqueue(clean_db, "sz.twice", max_attempts=1)
        wait_until(lambda: w.finished("succeeded"), message="the job's third run")
    # max_attempts=1, and yet three runs: neither snooze used the attempt.
    assert seen == [(1, 1), (1, 1), (1, 1)]
    state, attempt, snoozes, last_error, errors = row(clean_db, job_id)
    assert (state, attempt, snoozes, last_error, errors) == ("succeeded", 1, 2, None, [])
    snoozed = w.finished("snoozed")
    assert [e.retry_in_seconds for e in snoozed] == [0.0, 0.0]
    assert all(e.job.id == job_id and e.error is None for e in snoozed)


def test_a_snooze_delay_counts_on_the_database_clock(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="sz.later")
    async def later() -> None:
        raise pgqueue.Snooze(timedelta(hours=1), "waiting for the export")

    before = scalar(clean_db, "SELECT now()")
    with running_worker(clean_db, tasks) as w:
        job_id = enqueue(clean_db, "sz.later", max_attempts=2)
        wait_until(lambda: w.finished("snoozed"), message="the snooze written")
        after = scalar(clean_db, "SELECT now()")
        run_at, attempt, snoozes = fetch(
            clean_db, "SELECT run_at, attempt, snoozes FROM pgqueue.scheduled_jobs "
                      "WHERE id = %s", [job_id])[0]
        assert before + timedelta(hours=1) <= run_at <= after + timedelta(hours=1)
        assert (attempt, snoozes) == (0, 1)
        assert scalar(clean_db, "SELECT state::text FROM pgqueue.jobs WHERE id = %s",
                      [job_id]) == "queued"
    # Due in an hour: the worker never claimed it again.
    assert len(w.finished()) == 1


def test_a_job_that_snoozes_past_max_snoozes_fails_with_the_reason(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="sz.forever", max_snoozes=3)
    def forever() -> None:
        raise pgqueue.Snooze(0)

    before = REGISTRY.get_sample_value("pgqueue_jobs_snoozed_total",
                                       {"queue": "default", "task": "sz.forever"}) or 0.0
    with running_worker(clean_db, tasks, metrics_port=0) as w:
        job_id = enqueue(clean_db, "sz.forever", max_attempts=5)
        wait_until(lambda: w.finished("failed"), message="the job failed")
    state, attempt, snoozes, last_error, errors = row(clean_db, job_id)
    reason = "snoozed again after 3 snoozes, the most max_snoozes (3) allows; failed"
    assert (state, attempt, snoozes, last_error) == ("failed", 1, 3, reason)
    assert [(e["kind"], e["attempt"], e["message"]) for e in errors] == [
        ("snoozed", 1, reason)]
    assert [e.outcome for e in w.of(events.JobFinished)] == ["snoozed"] * 3 + ["failed"]
    assert w.finished("failed")[0].error == reason
    after = REGISTRY.get_sample_value("pgqueue_jobs_snoozed_total",
                                      {"queue": "default", "task": "sz.forever"})
    assert after == before + 3


def test_snoozes_are_shown_by_jobs_show_and_the_job_detail(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="sz.once", max_snoozes=0)
    def once() -> None:
        raise pgqueue.Snooze(0)

    with psycopg.connect(clean_db) as conn:
        job_id = pgqueue.enqueue(conn, "sz.once", {})
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.jobs SET snoozes = 7 WHERE id = %s", [job_id])
        (ran,) = drain(conn, tasks).jobs
        assert (ran.outcome, ran.error_kind) == ("failed", "snoozed")
        assert ran.error is not None and "max_snoozes (0)" in ran.error
        detail = pgqueue.get_job(conn, job_id)
    assert detail is not None and detail.snoozes == 7
    shown = cli_runner().invoke(main, ["jobs", "show", str(job_id), "--dsn", clean_db])
    assert shown.exit_code == 0, shown.output
    assert "      snoozes: 7" in shown.output


def test_a_drain_reports_a_snooze_and_the_job_waits(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="sz.drained")
    def drained() -> pgqueue.Snooze:
        return pgqueue.Snooze(30)

    with psycopg.connect(clean_db) as conn:
        job_id = pgqueue.enqueue(conn, "sz.drained", {})
        result = drain(conn, tasks)
        assert [(j.id, j.outcome, j.retry_in_seconds) for j in result.jobs] == [
            (job_id, "snoozed", 30.0)]
        assert conn.execute("SELECT attempt, snoozes, run_at > now() + interval '29 s' "
                            "FROM pgqueue.jobs WHERE id = %s", [job_id]).fetchone() == (
            0, 1, True)


@pytest.mark.parametrize("delay", [-1, math.nan, math.inf, "5", True, timedelta(days=-1),
                                   timedelta(days=365 * 101)])
def test_a_bad_snooze_delay_is_refused_where_it_is_raised(delay: Any) -> None:
    with pytest.raises(pgqueue.TaskError, match="Snooze delay must be"):
        pgqueue.Snooze(delay)


@pytest.mark.parametrize("cap", [-1, 1.5, True, "3", 2**31])
def test_a_bad_max_snoozes_is_refused(cap: Any) -> None:
    with pytest.raises(pgqueue.TaskError, match="max_snoozes must be an int"):
        pgqueue.Registry().task(name="sz.bad", max_snoozes=cap)(lambda: None)
