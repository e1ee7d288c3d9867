"""Maintenance services against a real database: each ``run_once`` alone, then a
running worker whose periodic schedule fails at every tick."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

import pgqueue
from pgqueue import events
from pgqueue.periodic import Schedule
from pgqueue.worker.maintenance.compactor import Compactor
from pgqueue.worker.maintenance.expiry import Expiry, ExpiryConfig
from pgqueue.worker.maintenance.heartbeat import Heartbeat
from pgqueue.worker.maintenance.leader import Leader
from pgqueue.worker.maintenance.reaper import Reaper, ReaperConfig
from pgqueue.worker.maintenance.scheduler import Scheduler
from pgqueue.worker.maintenance.settler import Settler
from pgqueue.worker.session import Session
from tests.support import fetch, running_worker, scalar, wait_until


def run(dsn: str, make: Any) -> Any:
    """Run ``make(session)`` (a coroutine) on a fresh session, then close it."""
    async def main() -> Any:
        session = Session(dsn, name="test-maintenance")
        try:
            return await make(session)
        finally:
            await session.close()

    return asyncio.run(main())


def stall(dsn: str, job_ids: list[int], worker_id: str | None = None) -> None:
    """As if a worker that died had claimed these jobs an hour ago."""
    fetch(dsn, "UPDATE pgqueue.jobs SET state = 'running', attempt = 1, worker_id = %s, "
               "started_at = now() - interval '1 hour', heartbeat_at = now() - interval '1 hour', "
               "claim_token = nextval('pgqueue.claim_tokens') "
               "WHERE id = ANY(%s) RETURNING id", [worker_id or str(uuid.uuid4()), job_ids])


def enqueue_many(dsn: str, n: int, task: str = "m.work", queue: str = "default") -> list[int]:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue_many(conn, [{"task": task, "queue": queue}] * n)


# --- each service's run_once ------------------------------------------------------------


def test_reaper_reclaims_in_statements_bounded_by_its_limit(clean_db: str) -> None:
    stall(clean_db, enqueue_many(clean_db, 25))
    fetch(clean_db, "INSERT INTO pgqueue.workers (id, host, pid, queues, tasks, concurrency, "
                    "heartbeat_at) VALUES (gen_random_uuid(), 'h', 1, '{}', '{}', 1, "
                    "now() - interval '1 hour') RETURNING id")
    seen: list[events.Event] = []

    def reaper(session: Session) -> Reaper:
        return Reaper(session, str(uuid.uuid4()), seen.append,
                      ReaperConfig(stall_timeout_seconds=60, limit=10))

    first = run(clean_db, lambda s: reaper(s).run_once())
    assert (len(first.requeued), first.failed, first.dead_workers, first.statements) == (
        25, (), 1, 3)
    reclaimed = [e for e in seen if isinstance(e, events.JobsReclaimed)]
    assert [len(e.requeued) for e in reclaimed] == [10, 10, 5]
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'queued' "
                            "AND last_error LIKE 'stalled%%'") == 25
    again = run(clean_db, lambda s: reaper(s).run_once())
    assert (again.requeued, again.failed, again.dead_workers, again.statements) == ((), (), 0, 1)


def test_reaper_fails_a_stalled_job_on_its_last_attempt(clean_db: str) -> None:
    (job,) = enqueue_many(clean_db, 1)
    stall(clean_db, [job])
    fetch(clean_db, "UPDATE pgqueue.jobs SET max_attempts = 1 WHERE id = %s RETURNING id", [job])
    result = run(clean_db, lambda s: Reaper(s, "w", lambda e: None).run_once())
    assert (result.requeued, result.failed, result.statements) == ((), (job,), 1)
    assert fetch(clean_db, "SELECT state::text FROM pgqueue.finished_jobs") == [("failed",)]


def test_expiry_ends_expired_jobs_in_bounded_statements(clean_db: str) -> None:
    ids = enqueue_many(clean_db, 5)
    fetch(clean_db, "UPDATE pgqueue.jobs SET expires_at = now() - interval '1 minute' "
                    "WHERE id = ANY(%s) RETURNING id", [ids[:3]])
    result = run(clean_db, lambda s: Expiry(s, ExpiryConfig(limit=2)).run_once())
    assert sorted(result.expired) == ids[:3] and result.statements == 2
    assert fetch(clean_db, "SELECT state::text, last_error, count(*) FROM pgqueue.finished_jobs "
                           "GROUP BY 1, 2") == [("cancelled", "expired", 3)]
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 2


def test_compactor_and_settler_report_what_they_did(clean_db: str) -> None:
    fetch(clean_db, "INSERT INTO pgqueue.failed_counts (queue, n) VALUES "
                    "('mq', 1), ('mq', 2), ('mq', 4) RETURNING n")
    assert run(clean_db, lambda s: Compactor(s).run_once()) == 3
    assert fetch(clean_db, "SELECT queue, n FROM pgqueue.failed_counts") == [("mq", 7)]
    assert run(clean_db, lambda s: Compactor(s).run_once()) == 0
    assert run(clean_db, lambda s: Settler(s).run_once()).statements == 1


def test_heartbeat_refreshes_held_jobs_and_reports_cancel_requests(clean_db: str) -> None:
    worker_id = str(uuid.uuid4())
    held = enqueue_many(clean_db, 2)
    stall(clean_db, held, worker_id)
    fetch(clean_db, "UPDATE pgqueue.jobs SET cancel_requested_at = now() WHERE id = %s "
                    "RETURNING id", [held[1]])
    cancelled: list[list[int]] = []
    identity = {"worker_id": worker_id, "host": socket.gethostname(), "pid": 1,
                "queues": ["default"], "tasks": ["m.work"], "concurrency": 2}

    attempts = [tuple(r) for r in fetch(clean_db, "SELECT id, claim_token FROM pgqueue.jobs "
                                                   "WHERE id = ANY(%s) ORDER BY id", [held])]

    def beat_with(holding: list[Any]) -> Any:
        def beat(session: Session) -> Any:
            heartbeat = Heartbeat(session, identity, held_ids=lambda: holding,
                                  on_cancel=cancelled.append)
            return heartbeat.run_once()
        return beat

    # A stale attempt (an older token of the job, same worker_id, as a frozen process
    # of a fixed worker_id would hold) keeps nothing alive.
    stale = run(clean_db, beat_with([(held[0], attempts[0][1] - 1), (held[1], None)]))
    assert stale.refreshed == 0
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs "
                            "WHERE heartbeat_at > now() - interval '1 minute'") == 0
    cancelled.clear()

    result = run(clean_db, beat_with(attempts))
    assert (result.refreshed, result.cancel_requested) == (2, (held[1],))
    assert cancelled == [[held[1]]]
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs "
                            "WHERE heartbeat_at > now() - interval '1 minute'") == 2


def test_leader_lease_is_held_by_one_worker_until_it_resigns(clean_db: str) -> None:
    seen: list[events.Event] = []

    async def elect(session: Session) -> list[bool]:
        a = Leader(session, str(uuid.uuid4()), seen.append)
        b = Leader(session, str(uuid.uuid4()), seen.append)
        got = [await a.run_once(), await b.run_once(), await a.run_once()]
        await a.resign()
        got.append(await b.run_once())
        assert (a.term, b.term) == (1, 1)
        return got

    assert run(clean_db, elect) == [True, False, True, True]
    assert [e.is_leader for e in seen if isinstance(e, events.LeaderChanged)] == [
        True, False, True]


def test_scheduler_enqueues_a_due_tick_once(clean_db: str) -> None:
    # Hourly, so no new tick comes due between the two runs even on a loaded machine
    # (an every-second schedule did, and its second run rightly enqueued that tick).
    sched = Schedule(name="m.hourly", cron="0 * * * *", task="m.work",
                     queue="default", args_json='{"n": 1}', on_missed="run_once")

    async def schedule(session: Session) -> tuple[Any, Any]:
        leader = Leader(session, str(uuid.uuid4()), lambda e: None)
        assert await leader.run_once()
        scheduler = Scheduler(session, [sched], leader)
        await scheduler.sync()
        fetch(clean_db, "UPDATE pgqueue.periodic SET last_tick = now() - interval '3 h' "
                        "RETURNING name")
        return await scheduler.run_once(), await scheduler.run_once()

    first, second = run(clean_db, schedule)
    assert len(first.enqueued) == 1 and first.skipped == 0
    assert 0 <= first.next_in_seconds <= 3600
    assert second.enqueued == ()
    assert fetch(clean_db, "SELECT task, args FROM pgqueue.jobs") == [("m.work", {"n": 1})]


# --- a running worker with a schedule that fails every time -------------------------------


def service_errors(service: str) -> float:
    return REGISTRY.get_sample_value("pgqueue_service_errors_total", {"service": service}) or 0.0


def last_job_id(dsn: str) -> Any:
    rows = fetch(dsn, "SELECT last_job_id FROM pgqueue.periodic WHERE name = 'm.tick'")
    return rows[0][0] if rows else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_failing_schedule_leaves_heartbeat_claims_reaper_and_leadership_alone(
        clean_db: str, caplog: pytest.LogCaptureFixture) -> None:
    queue = f"m{uuid.uuid4().hex[:8]}"
    tasks = pgqueue.Registry()
    ran: list[int] = []

    @tasks.periodic(cron="* * * * * *", name="m.tick", queue=queue)
    def tick(ctx: pgqueue.JobContext) -> None:
        ran.append(ctx.id)

    @tasks.task(name="m.work", queue=queue)
    def work(ctx: pgqueue.JobContext) -> None:
        ran.append(ctx.id)

    caplog.set_level(logging.INFO, logger="pgqueue")
    before = service_errors("scheduler")
    with running_worker(clean_db, tasks, log_events=True, metrics_port=free_port()) as w:
        wait_until(lambda: last_job_id(clean_db), message="the schedule's first job")
        claim_pid = scalar(clean_db, "SELECT pid FROM pg_stat_activity WHERE application_name "
                                     "= 'pgqueue-claim' AND datname = current_database()")
        # Break the schedule for real: its args are no JSON object, so every
        # insert of its job violates jobs_args_object.
        fetch(clean_db, "UPDATE pgqueue.periodic SET args = '[1]' WHERE name = 'm.tick' "
                        "RETURNING name")
        wait_until(lambda: len([e for e in w.of(events.ServiceError)
                                if e.service == "scheduler"]) >= 3,
                   message="the scheduler to fail three times")
        broken_at = last_job_id(clean_db)  # the last tick handled before the fault
        beat = scalar(clean_db, "SELECT heartbeat_at FROM pgqueue.workers")
        stalled = enqueue_many(clean_db, 1, queue=queue)
        stall(clean_db, stalled)  # the reaper, another leader-only service, still runs
        fresh = enqueue_many(clean_db, 20, queue=queue)
        wait_until(lambda: set(stalled + fresh) <= set(ran), message="claims and the reaper")
        wait_until(lambda: scalar(clean_db, "SELECT heartbeat_at FROM pgqueue.workers") > beat,
                   message="a heartbeat after the failures")
        failing = [e for e in w.of(events.ServiceError) if e.service == "scheduler"]
        # The fault is repaired: the scheduler recovers and the schedule ticks again.
        fetch(clean_db, "UPDATE pgqueue.periodic SET args = '{}' WHERE name = 'm.tick' "
                        "RETURNING name")
        wait_until(lambda: w.of(events.ServiceRecovered), message="the scheduler's recovery")
        wait_until(lambda: last_job_id(clean_db) not in (None, broken_at), message="a new tick")
        last_job = last_job_id(clean_db)
        wait_until(lambda: last_job in ran, message="a tick's job after the repair")
        assert scalar(clean_db, "SELECT pid FROM pg_stat_activity WHERE application_name "
                                "= 'pgqueue-claim' AND datname = current_database()") == claim_pid
        assert [e.is_leader for e in w.of(events.LeaderChanged)] == [True]
        assert scalar(clean_db, "SELECT count(*) FROM pgqueue.leader "
                                "WHERE worker_id = %s", [w.worker.id]) == 1
        assert not w.of(events.ConnectionLost)
    assert [e.failures for e in failing] == list(range(1, len(failing) + 1))
    assert "jobs_args_object" in (failing[0].traceback or "")
    assert all(e.traceback is None for e in failing[1:])
    assert service_errors("scheduler") - before >= len(failing)
    logged = [r for r in caplog.records if getattr(r, "event", None) == "service_error"]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert logged[0].service == "scheduler"  # type: ignore[attr-defined]
    assert "CheckViolation" in logged[0].traceback  # type: ignore[attr-defined]
    recovered = w.of(events.ServiceRecovered)
    assert [(e.service, e.failures >= len(failing)) for e in recovered] == [("scheduler", True)]
