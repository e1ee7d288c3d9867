"""Outcomes the database cannot store as they are never hold back the others.

A handler's error or result with a NUL character or a lone surrogate is stored
rewritten (each such character as its escape) with a note; an outcome the
database refuses all the same is isolated by splitting the batch and recorded
as ``failed`` with the database's reason. Every other outcome is written.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import psycopg

import pgqueue
from pgqueue import events
from pgqueue._sql import query
from pgqueue.types import Job
from pgqueue.worker.completer import Completer
from pgqueue.worker.executor import Outcome
from pgqueue.worker.session import Session
from tests.support import fetch, history, running_worker, scalar, wait_until


def enqueue(dsn: str, task: str, **kw: Any) -> int:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue(conn, task, {}, **kw)


def poison_registry(runs: list[str]) -> pgqueue.Registry:
    tasks = pgqueue.Registry()

    @tasks.task(name="poison.error")
    def poison_error() -> None:
        runs.append("poison.error")
        raise ValueError("a\x00b")

    @tasks.task(name="poison.result")
    def poison_result() -> dict[str, str]:
        runs.append("poison.result")
        return {"text": "x\x00y", "k\x00": "lone \udcff"}

    @tasks.task(name="poison.opaque")
    def poison_opaque() -> object:
        runs.append("poison.opaque")
        return {"not json": {1, 2}, "nul": "\x00"}

    @tasks.task(name="ok")
    def ok(ctx: pgqueue.JobContext) -> int:
        runs.append("ok")
        return ctx.id

    return tasks


def test_nul_in_an_error_or_result_does_not_block_the_worker(clean_db: str) -> None:
    runs: list[str] = []
    tasks = poison_registry(runs)
    with running_worker(clean_db, tasks, concurrency=4) as w:
        bad_error = enqueue(clean_db, "poison.error", max_attempts=1)
        bad_result = enqueue(clean_db, "poison.result")
        opaque = enqueue(clean_db, "poison.opaque")
        oks = [enqueue(clean_db, "ok") for _ in range(20)]
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs") == 23,
                   timeout=60, message="every outcome written")
        wait_until(lambda: len(w.of(events.OutcomeRewritten)) == 3,
                   message="an event for each rewritten outcome")
    for job_id in oks:
        h = history(clean_db, job_id)
        assert (h["state"], h["attempt"], h["result"]) == ("succeeded", 1, job_id)

    h = history(clean_db, bad_error)
    assert h["state"] == "failed" and h["attempt"] == 1
    assert h["last_error"] == "ValueError: a\\x00b"
    (entry,) = h["errors"]
    assert entry["kind"] == "error" and "a\\x00b" in entry["traceback"]
    assert "1 NUL character replaced by \\x00" in entry["note"]

    h = history(clean_db, bad_result)
    assert h["state"] == "succeeded"
    assert h["result"] == {"text": "x\\x00y", "k\\x00": "lone \\udcff"}
    assert h["last_error"] is None
    (entry,) = h["errors"]
    assert entry["kind"] == "rewritten"
    assert "2 NUL characters replaced by \\x00" in entry["message"]
    assert "1 lone surrogate replaced" in entry["message"]

    h = history(clean_db, opaque)
    assert h["state"] == "succeeded"
    assert set(h["result"]) == {"repr"} and "\\x00" in h["result"]["repr"]
    assert "result is not JSON" in h["errors"][0]["message"]

    rewritten = {e.job.id: e for e in w.of(events.OutcomeRewritten)}
    assert set(rewritten) == {bad_error, bad_result, opaque}
    assert not any(e.isolated for e in rewritten.values())
    assert rewritten[bad_error].outcome == rewritten[bad_error].original == "failed"
    assert not w.of(events.ConnectionLost) and not w.of(events.ServiceError)


def test_stopping_after_a_poison_outcome_runs_no_finished_job_again(clean_db: str) -> None:
    """The shutdown hand-back never lowers the attempt of a job whose handler
    finished: nothing that succeeded runs again, a max_attempts=1 job stays used up."""
    runs: list[str] = []
    tasks = poison_registry(runs)
    jobs = [enqueue(clean_db, "poison.error", max_attempts=1)]
    jobs += [enqueue(clean_db, "ok", max_attempts=1) for _ in range(10)]
    with running_worker(clean_db, tasks, concurrency=4):
        wait_until(lambda: len(runs) == 11, message="every handler ran")
    # Stopped: nothing is left running or queued, each attempt counted once.
    rows = fetch(clean_db, "SELECT id, state::text, attempt FROM pgqueue.all_jobs ORDER BY id")
    assert [r[0] for r in rows] == jobs
    assert all(r[2] == 1 for r in rows), rows
    assert all(r[1] in ("succeeded", "failed") for r in rows), rows
    with running_worker(clean_db, tasks) as w:
        probe = enqueue(clean_db, "ok")
        wait_until(lambda: w.finished("succeeded"), message="the probe job")
    assert [e.job.id for e in w.finished()] == [probe]
    assert len(runs) == 12


def claimed_jobs(dsn: str, worker_id: str, count: int) -> list[Job]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(query("job_claim"), {
            "queues": ["default"], "slots": [count], "tasks": ["t"], "limit": count,
            "worker_id": worker_id, "key_tasks": [], "key_caps": [], "bases": None, "strides": None,
            "fair": None, "cursors": None,
            "async_commit": False}).fetchall()
    assert len(rows) == count
    return [Job(*row) for row in rows]


def test_a_batch_with_refused_outcomes_writes_all_the_others(clean_db: str) -> None:
    """One statement for 40 outcomes, two of which the database refuses: a retry
    delay out of the interval range, and a result a constraint refuses. The batch
    is split until each is alone; the other 38 are written as they were."""
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.enqueue('t', '{}') FROM generate_series(1, 40)")
        conn.execute("ALTER TABLE pgqueue.finished_jobs ADD CONSTRAINT refuses_forbidden"
                     " CHECK (result IS DISTINCT FROM '\"forbidden\"')")
    worker_id = str(uuid.uuid4())
    jobs = claimed_jobs(clean_db, worker_id, 40)
    far_retry, forbidden = jobs[7].id, jobs[30].id
    outcomes = []
    for job in jobs:
        if job.id == far_retry:
            outcomes.append(Outcome(job, "retried", 0.01, delay_seconds=1e300,
                                    error={"kind": "retry", "attempt": 1, "message": "later"}))
        elif job.id == forbidden:
            outcomes.append(Outcome(job, "succeeded", 0.01, result_json='"forbidden"'))
        else:
            outcomes.append(Outcome(job, "succeeded", 0.01, result_json=str(job.id)))
    seen: list[events.Event] = []

    async def complete() -> bool:
        session = Session(clean_db, name="test")
        completer = Completer(session, worker_id, seen.append)
        service = asyncio.create_task(completer.run())
        try:
            for outcome in outcomes:
                completer.submit(outcome)
            return await completer.drain(timeout=30)
        finally:
            service.cancel()
            await asyncio.gather(service, return_exceptions=True)
            await session.close()

    assert asyncio.run(complete()), "the completer did not write the batch"
    for job in jobs:
        h = history(clean_db, job.id)
        if job.id in (far_retry, forbidden):
            assert h["state"] == "failed", h
            assert h["last_error"].startswith("the outcome of this attempt (")
            assert h["errors"][-1]["kind"] == "unstorable"
        else:
            assert (h["state"], h["result"]) == ("succeeded", job.id)
    assert "interval out of range" in history(clean_db, far_retry)["last_error"]
    assert "(retried)" in history(clean_db, far_retry)["last_error"]
    assert history(clean_db, far_retry)["errors"][-1]["original_message"] == "later"
    assert "refuses_forbidden" in history(clean_db, forbidden)["last_error"]
    isolated = [e for e in seen if isinstance(e, events.OutcomeRewritten)]
    assert {(e.job.id, e.original, e.outcome, e.isolated) for e in isolated} == {
        (far_retry, "retried", "failed", True), (forbidden, "succeeded", "failed", True)}
    finished = [e for e in seen if isinstance(e, events.JobFinished)]
    assert len(finished) == 40 and not any(isinstance(e, events.JobLost) for e in seen)
    assert not any(isinstance(e, events.ConnectionLost | events.ServiceError) for e in seen)


def test_a_finished_job_whose_outcome_is_not_written_is_not_handed_back(clean_db: str) -> None:
    """At shutdown an outcome still unwritten (its row is locked here) belongs to a
    handler that finished: the hand-back leaves the job alone, its attempt counted
    (the reaper takes it from there)."""
    tasks = pgqueue.Registry()
    started, proceed, returned = threading.Event(), threading.Event(), threading.Event()

    @tasks.task(name="held")
    def held() -> str:
        started.set()
        assert proceed.wait(30)
        returned.set()
        return "done"

    job_id = enqueue(clean_db, "held")
    with psycopg.connect(clean_db) as locker:
        with running_worker(clean_db, tasks, shutdown_timeout=0.5) as w:
            assert started.wait(30)
            locker.execute("SELECT id FROM pgqueue.jobs WHERE id = %s FOR UPDATE", [job_id])
            proceed.set()
            assert returned.wait(30)
        rows = fetch(clean_db, "SELECT state::text, attempt FROM pgqueue.jobs WHERE id = %s",
                     [job_id])
        assert rows == [("running", 1)], "the hand-back took back a job whose handler finished"
        assert not w.of(events.JobsHandedBack)
        locker.rollback()
