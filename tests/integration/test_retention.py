"""Automatic retention through the real database: the leader's pruner deletes finished
jobs older than their retention, by state, per queue, in bounded statements, and never
what a blocked job or an open batch still needs."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

import pgqueue
from pgqueue import events
from pgqueue.errors import ConfigError
from pgqueue.retention import DEFAULT_RETENTION, Retention, parse_retention
from pgqueue.testing import drain
from pgqueue.worker.maintenance.pruner import Pruner, PrunerConfig, PruneResult
from pgqueue.worker.session import Session
from tests.support import cli_runner, fetch, running_worker, scalar, wait_until

DAY = 86400.0


def registry() -> pgqueue.Registry:
    tasks = pgqueue.Registry()

    @tasks.task(name="r.ok", queue="default")
    async def ok(n: int = 0) -> dict[str, int]:
        return {"n": n}

    @tasks.task(name="r.fail", queue="default", max_attempts=1)
    async def fail(n: int = 0) -> None:
        raise pgqueue.PermanentError("no")

    return tasks


def finish(dsn: str, queue: str = "default", *, succeeded: int = 0, failed: int = 0,
           cancelled: int = 0) -> dict[str, list[int]]:
    """Jobs of ``queue`` that end in each state, through the public API."""
    made: dict[str, list[int]] = {"succeeded": [], "failed": [], "cancelled": []}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for state, task, n in (("succeeded", "r.ok", succeeded), ("failed", "r.fail", failed),
                               ("cancelled", "r.ok", cancelled)):
            for i in range(n):
                made[state].append(pgqueue.enqueue(conn, task, {"n": i}, queue=queue))
        for job_id in made["cancelled"]:
            pgqueue.cancel(conn, job_id)
        drain(conn, registry(), queues=[queue])
    for state, ids in made.items():
        assert sorted(ids) == [r[0] for r in fetch(
            dsn, "SELECT id FROM pgqueue.finished_jobs WHERE id = ANY(%s) AND state = %s::text::"
                 "pgqueue.job_state ORDER BY id", [ids, state])], state
    return made


def age(dsn: str, ids: list[int], seconds: float, *, rolled_up: bool = True) -> None:
    """As if these jobs had finished ``seconds`` ago, and (``rolled_up``) the
    dashboard's roll-up had counted all of history up to now."""
    fetch(dsn, "UPDATE pgqueue.finished_jobs SET finished_at = now() - %s * interval '1 second' "
               "WHERE id = ANY(%s) RETURNING id", [seconds, ids])
    if rolled_up:
        fetch(dsn, "UPDATE pgqueue.rollup_state SET rolled_until = now() RETURNING 1")


def history(dsn: str) -> set[int]:
    return {r[0] for r in fetch(dsn, "SELECT id FROM pgqueue.finished_jobs")}


def prune(dsn: str, config: PrunerConfig | None = None) -> PruneResult:
    """One whole round of a fresh pruner (no cursor yet) on a fresh session."""
    async def main() -> PruneResult:
        session = Session(dsn, name="test-pruner")
        try:
            return await Pruner(session, "w", lambda e: None, config).run_once()
        finally:
            await session.close()

    return asyncio.run(main())


# --- the leader of a running worker ----------------------------------------------------


def test_the_leader_prunes_expired_rows_by_state_and_keeps_the_rest(clean_db: str) -> None:
    made = finish(clean_db, succeeded=4, failed=4, cancelled=4)
    # Per state, half past the default retention and half within it.
    ages = {"succeeded": (1 * DAY, 2 * DAY), "cancelled": (7 * DAY, 8 * DAY),
            "failed": (30 * DAY, 31 * DAY)}
    expired: set[int] = set()
    for state, (within, past) in ages.items():
        ids = made[state]
        age(clean_db, ids[:2], within - 3600)
        age(clean_db, ids[2:], past)
        expired |= set(ids[2:])
    everything = history(clean_db)
    assert scalar(clean_db, "SELECT failed FROM pgqueue.queue_stats WHERE queue = 'default'") == 4
    before = REGISTRY.get_sample_value("pgqueue_jobs_pruned_total",
                                       {"queue": "default", "state": "failed"}) or 0.0

    with running_worker(clean_db, registry(), metrics_port=0) as worker:
        wait_until(lambda: history(clean_db) == everything - expired, timeout=60,
                   message="the leader to prune the expired rows")
        reports = wait_until(lambda: worker.of(events.PruneReport), timeout=30,
                             message="a prune report")
    pruned = worker.of(events.JobsPruned)
    assert sum(e.jobs for e in pruned) == len(expired)
    assert {e.state for e in pruned} == {"succeeded", "failed", "cancelled"}
    assert dict(reports[0].jobs) == {"succeeded": 2, "failed": 2, "cancelled": 2}
    assert reports[0].rounds == 1 and reports[0].statements >= 3
    # The failed count of queue_stats follows the deleted rows.
    assert scalar(clean_db, "SELECT failed FROM pgqueue.queue_stats WHERE queue = 'default'") == 2
    after = REGISTRY.get_sample_value("pgqueue_jobs_pruned_total",
                                      {"queue": "default", "state": "failed"})
    assert after == before + 2


def test_a_worker_with_retention_off_prunes_only_the_queues_that_override_it(
        clean_db: str) -> None:
    kept = finish(clean_db, "keep", succeeded=2, failed=1)
    gone = finish(clean_db, "gone", succeeded=2)
    age(clean_db, kept["succeeded"] + kept["failed"], 400 * DAY)
    age(clean_db, gone["succeeded"], 2 * 3600)
    with psycopg.connect(clean_db) as conn:
        pgqueue.set_retention(conn, "gone", succeeded="1h")
        conn.commit()
    with running_worker(clean_db, registry(), retention="off") as worker:
        # The round that deletes the override's rows has no target in "keep".
        wait_until(lambda: not history(clean_db) & set(gone["succeeded"]), timeout=60,
                   message="the override's rows to go")
    assert history(clean_db) == set(kept["succeeded"] + kept["failed"])
    assert {(e.queue, e.jobs) for e in worker.of(events.JobsPruned)} == {("gone", 2)}


# --- per-queue overrides and off ---------------------------------------------------------


def test_per_queue_overrides_and_off_at_either_level(clean_db: str) -> None:
    audit = finish(clean_db, "audit", succeeded=2, failed=2)
    email = finish(clean_db, "email", succeeded=2, cancelled=2)
    plain = finish(clean_db, "plain", succeeded=2)
    for made in (audit, email, plain):
        for ids in made.values():
            age(clean_db, ids, 2 * 3600)  # two hours old
    with psycopg.connect(clean_db) as conn:
        # audit keeps succeeded for ever and failed one hour; email cancelled one hour.
        pgqueue.set_retention(conn, "audit", succeeded="off", failed=timedelta(hours=1))
        pgqueue.set_retention(conn, "email", cancelled=3600)
        assert pgqueue.get_retention(conn, "audit") == {"succeeded": None,
                                                        "failed": timedelta(hours=1)}
        conn.commit()
    # The defaults keep two-hour-old rows: only the overrides delete.
    result = prune(clean_db)
    assert result.jobs == {("audit", "failed"): 2, ("email", "cancelled"): 2}
    assert history(clean_db) == set(audit["succeeded"] + email["succeeded"] + plain["succeeded"])
    # Globally off for succeeded; a queue's override still applies.
    with psycopg.connect(clean_db) as conn:
        pgqueue.set_retention(conn, "plain", succeeded="1h")
        conn.commit()
    result = prune(clean_db, PrunerConfig(retention=parse_retention("succeeded=off")))
    assert result.jobs == {("plain", "succeeded"): 2}
    # Back to the default: audit's succeeded rows follow the worker's (1 minute here).
    with psycopg.connect(clean_db) as conn:
        pgqueue.set_retention(conn, "audit", succeeded="default")
        assert pgqueue.get_retention(conn, "audit") == {"failed": timedelta(hours=1)}
        conn.commit()
    result = prune(clean_db, PrunerConfig(retention=parse_retention("succeeded=1m")))
    assert result.jobs == {("audit", "succeeded"): 2, ("email", "succeeded"): 2}
    assert history(clean_db) == set()


def test_retention_overrides_on_an_async_connection(clean_db: str) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(clean_db) as conn:
            await pgqueue.set_retention_async(conn, "audit", succeeded="2h", failed="off")
            assert await pgqueue.get_retention_async(conn, "audit") == {
                "succeeded": timedelta(hours=2), "failed": None}
            await conn.rollback()  # the caller's transaction: nothing committed
            assert await pgqueue.get_retention_async(conn, "audit") == {}
            with pytest.raises(pgqueue.InvalidArgumentError):
                await pgqueue.set_retention_async(conn, "audit", succeeded="soon")
            await conn.rollback()
            await pgqueue.set_retention_async(conn, "audit", cancelled=600)
            await conn.commit()
        with psycopg.connect(clean_db) as sync:
            assert pgqueue.get_retention(sync, "audit") == {"cancelled": timedelta(minutes=10)}

    asyncio.run(main())


def test_retention_from_sql_and_the_cli(clean_db: str) -> None:
    made = finish(clean_db, "sqlq", succeeded=2, failed=1)
    age(clean_db, made["succeeded"] + made["failed"], 3 * 3600)
    fetch(clean_db, "SELECT pgqueue.set_retention('sqlq', 'succeeded', interval '2 hours')")
    fetch(clean_db, "SELECT pgqueue.set_retention('sqlq', 'failed', NULL)")
    assert prune(clean_db, PrunerConfig(retention=parse_retention("failed=1m"))).jobs == {
        ("sqlq", "succeeded"): 2}
    assert scalar(clean_db, "SELECT pgqueue.reset_retention('sqlq')") == 2

    from pgqueue.cli import main

    runner = cli_runner()
    shown = runner.invoke(main, ["queue", "retention", "cliq", "succeeded=12h,failed=off",
                                 "--json", "--dsn", clean_db])
    assert shown.exit_code == 0, shown.output
    assert '"succeeded": 43200.0' in shown.stdout and '"failed": "off"' in shown.stdout
    text = runner.invoke(main, ["queue", "retention", "cliq", "--dsn", clean_db])
    assert text.exit_code == 0, text.output
    assert "succeeded 12h; cancelled default; failed off" in text.stdout
    again = runner.invoke(main, ["queue", "retention", "cliq", "failed=default",
                                 "--dsn", clean_db])
    assert "failed default" in again.stdout
    assert fetch(clean_db, "SELECT queue::text, state::text, keep_for FROM "
                           "pgqueue.queue_retention") == [("cliq", "succeeded",
                                                           timedelta(hours=12))]


# --- batches and results ------------------------------------------------------------------


def test_batches_and_results_follow_their_jobs_and_open_batches_keep_theirs(
        clean_db: str) -> None:
    tasks = registry()
    with psycopg.connect(clean_db) as conn:
        with pgqueue.batch(conn, name="done") as b:
            done_ids = [b.enqueue("r.ok", {"n": 1}), b.enqueue("r.fail", {"n": 2})]
            done_batch = b.id
        conn.commit()
    # An open batch: created and given jobs, never sealed (the SQL functions).
    open_batch = scalar(clean_db, "SELECT pgqueue.create_batch('open')")
    open_ids = [scalar(clean_db, "SELECT pgqueue.enqueue('r.ok', batch_id => %s)",
                       [open_batch]) for _ in range(2)]
    with psycopg.connect(clean_db, autocommit=True) as conn:
        drain(conn, tasks)
        assert pgqueue.result(conn, done_ids[0]) == {"n": 1}
        assert pgqueue.get_batch(conn, done_batch).finished
    age(clean_db, done_ids + open_ids, 400 * DAY)

    result = prune(clean_db)
    assert result.total == 2 and result.batches == 1
    assert history(clean_db) == set(open_ids)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        with pytest.raises(pgqueue.JobNotFoundError):
            pgqueue.result(conn, done_ids[0])
        assert pgqueue.get_batch(conn, done_batch) is None
        info = pgqueue.get_batch(conn, open_batch)
        assert info is not None and info.succeeded == 2 and not info.finished
    # Sealed, the batch finishes; a later round (rows kept are looked at again
    # at the next rescan) takes its jobs, and the batch with its last one.
    fetch(clean_db, "SELECT pgqueue.seal_batch(%s)", [open_batch])
    assert prune(clean_db, PrunerConfig(rescan_seconds=0)).batches == 1
    assert history(clean_db) == set()
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.job_batches") == 0


# --- dependencies -----------------------------------------------------------------------------


def test_never_deletes_a_dependency_a_blocked_job_waits_on(clean_db: str) -> None:
    made = finish(clean_db, failed=1, succeeded=1)
    (dep,), (other,) = made["failed"], made["succeeded"]
    age(clean_db, [dep, other], 400 * DAY)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        live = pgqueue.enqueue(conn, "r.ok", {"n": 9}, delay=timedelta(days=1))
        blocked = pgqueue.enqueue(conn, "r.ok", {}, depends_on=[dep, live])
    assert scalar(clean_db, "SELECT blocked FROM pgqueue.jobs WHERE id = %s", [blocked])

    async def scenario() -> tuple[PruneResult, PruneResult]:
        session = Session(clean_db, name="test-pruner")
        pruner = Pruner(session, "w", lambda e: None)
        try:
            first = await pruner.run_once()
            assert dep in history(clean_db)
            # Its other dependency ends: the blocked job is judged on the failed
            # row that was kept.
            with psycopg.connect(clean_db, autocommit=True) as conn:
                pgqueue.cancel(conn, live)
            assert scalar(clean_db, "SELECT last_error FROM pgqueue.finished_jobs "
                                    "WHERE id = %s", [blocked]) == f"dependency {dep} ended failed"
            # Nothing needs it now, but this pruner's cursor has passed it: it
            # waits for the next rescan (rescan_seconds).
            return first, await pruner.run_once()
        finally:
            await session.close()

    first, second = asyncio.run(scenario())
    assert first.jobs == {("default", "succeeded"): 1}
    assert second.total == 0 and dep in history(clean_db)
    assert prune(clean_db).jobs.get(("default", "failed")) == 1  # a fresh cursor
    assert dep not in history(clean_db)


def test_a_dependency_being_linked_is_skipped_then_protected(clean_db: str) -> None:
    made = finish(clean_db, failed=1)
    (dep,) = made["failed"]
    age(clean_db, [dep], 400 * DAY)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        live = pgqueue.enqueue(conn, "r.ok", {}, delay=timedelta(days=1))
    # A producer's transaction links a job to the expired row and has not committed.
    with psycopg.connect(clean_db) as producer:
        blocked = pgqueue.enqueue(producer, "r.ok", {}, depends_on=[dep, live])
        assert prune(clean_db).total == 0  # locked by the producer: skipped, not waited on
        assert dep in history(clean_db)
        producer.commit()
    assert prune(clean_db).total == 0  # committed: a blocked job depends on it
    assert dep in history(clean_db)
    assert scalar(clean_db, "SELECT blocked FROM pgqueue.jobs WHERE id = %s", [blocked])


def test_an_enqueue_waiting_on_the_pruner_fails_cleanly_when_the_row_goes(
        clean_db: str) -> None:
    made = finish(clean_db, succeeded=1)
    (dep,) = made["succeeded"]
    age(clean_db, [dep], 400 * DAY)
    with psycopg.connect(clean_db) as pruning:
        # The pruner's step, held open: the row is locked and deleted, not committed.
        pruning.execute("SELECT * FROM pgqueue.prune_history('default', 'succeeded', 60, "
                        "NULL, NULL, 10)")
        outcome: list[Any] = []

        def link() -> None:
            with psycopg.connect(clean_db) as producer:
                try:
                    pgqueue.enqueue(producer, "r.ok", {}, depends_on=[dep])
                    producer.commit()
                    outcome.append("enqueued")
                except pgqueue.InvalidJobError as exc:
                    producer.rollback()
                    outcome.append(str(exc))

        thread = threading.Thread(target=link)
        thread.start()
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pg_stat_activity WHERE "
                                            "wait_event_type = 'Lock' AND datname = "
                                            "current_database()"), message="the wait")
        pruning.commit()
        thread.join(30)
    assert outcome and f"depends_on names job {dep}, which does not exist" in outcome[0]
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0


# --- bounded statements -------------------------------------------------------------------------


def test_each_statement_deletes_at_most_its_limit_and_the_cursor_moves_on(
        clean_db: str) -> None:
    made = finish(clean_db, succeeded=25)
    age(clean_db, made["succeeded"], 2 * DAY)
    seen: list[events.Event] = []

    async def steps() -> list[tuple[int, int]]:
        session = Session(clean_db, name="test-pruner")
        pruner = Pruner(session, "w", seen.append, PrunerConfig(limit=10))
        done: list[tuple[int, int]] = []
        try:
            while True:
                step = await pruner.step()
                done.append((step.deleted, scalar(
                    clean_db, "SELECT count(*) FROM pgqueue.finished_jobs")))
                if step.round_done:
                    return done
        finally:
            await session.close()

    # 10, 10, then the last 5, then the other two states (nothing): never more
    # than the limit at once.
    assert asyncio.run(steps()) == [(10, 15), (10, 5), (5, 0), (0, 0), (0, 0)]
    assert [e.jobs for e in seen if isinstance(e, events.JobsPruned)] == [10, 10, 5]


def test_the_pruner_statement_reads_a_bounded_index_range(clean_db: str) -> None:
    # Seq scans and sorts priced out: what remains shows the index serves the
    # whole statement, its order and its cursor (a tiny table would be planned
    # otherwise; the benchmark shows the plan over millions of rows).
    with psycopg.connect(clean_db) as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_sort = off")
        plan = conn.execute("EXPLAIN (FORMAT JSON) SELECT h.id FROM pgqueue.finished_jobs h "
                           "WHERE h.queue = 'default' AND h.state = 'succeeded' "
                           "AND h.finished_at < now() - interval '1 day' "
                           "AND (h.finished_at, h.id) > ('-infinity'::timestamptz, 0) "
                           "ORDER BY h.finished_at, h.id LIMIT 1000 FOR UPDATE SKIP LOCKED"
                            ).fetchall()
    text = str(plan)
    assert "finished_jobs_queue_state_finished_idx" in text and "Sort" not in text
    assert "ROW(finished_at, id) >" in text  # the cursor is an index condition


# --- bad configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "message"), [
    ("succeeded=banana", "'banana' is not a retention"),
    ("bogus=1d", "'bogus' is not a final state"),
    ("succeeded=30s", "from 1 minute to 100 years"),
    ("succeeded", "is not STATE=AGE"),
    ("succeeded=1d,succeeded=2d", "succeeded is given twice"),
    ("failed=7", "'7' is not a retention"),
])
def test_bad_worker_retention_is_refused_with_a_clear_error(clean_db: str, spec: str,
                                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pgqueue.Worker(registry(), dsn=clean_db, retention=spec)
    from pgqueue.cli import main

    result = cli_runner().invoke(main, ["worker", "--app", "x:y", "--dsn", clean_db,
                                        "--retention", spec])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "--retention" in result.output


def test_worker_retention_from_the_environment_and_its_spellings(
        clean_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert pgqueue.Worker(registry(), dsn=clean_db).config.retention == DEFAULT_RETENTION
    worker = pgqueue.Worker(registry(), dsn=clean_db,
                            retention={"failed": timedelta(days=90), "succeeded": "off"})
    assert worker.config.retention == Retention(succeeded=None, cancelled=7 * DAY,
                                                failed=90 * DAY)
    assert worker.config.retention.spec() == "succeeded=off,cancelled=1w,failed=90d"
    monkeypatch.setenv("PGQUEUE_RETENTION", "succeeded=banana")
    from pgqueue.cli import main

    result = cli_runner().invoke(main, ["worker", "--app", "x:y", "--dsn", clean_db])
    assert result.exit_code == 2 and "'banana' is not a retention" in result.output


def test_bad_queue_retention_is_refused_and_changes_nothing(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        for bad, message in ((dict(succeeded="banana"), "'banana' is not a retention"),
                             (dict(failed=10), "from 1 minute to 100 years"),
                             (dict(cancelled=[1]), "must be a timedelta"),
                             ({}, "give at least one")):
            with pytest.raises(pgqueue.InvalidArgumentError, match=message):
                pgqueue.set_retention(conn, "q", **bad)  # type: ignore[arg-type]
        with pytest.raises(pgqueue.InvalidArgumentError, match="not a valid queue name"):
            pgqueue.set_retention(conn, "no spaces", succeeded="1d")
        conn.commit()
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.queue_retention") == 0
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="state must be succeeded"):
        fetch(clean_db, "SELECT pgqueue.set_retention('q', 'queued', NULL)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="from 1 minute"):
        fetch(clean_db, "SELECT pgqueue.set_retention('q', 'failed', interval '1 second')")
    from pgqueue.cli import main

    result = cli_runner().invoke(main, ["queue", "retention", "q", "succeeded=banana",
                                        "--dsn", clean_db])
    assert result.exit_code == 2 and "'banana' is not a retention" in result.output
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.queue_retention") == 0


# --- reports ------------------------------------------------------------------------------------


def test_reports_come_once_per_round_at_most_every_report_interval(
        clean_db: str, caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    seen: list[events.Event] = []

    async def rounds() -> None:
        session = Session(clean_db, name="test-pruner")
        pruner = Pruner(session, str(uuid.uuid4()), seen.append,
                        PrunerConfig(limit=2, report_seconds=300), clock=lambda: now[0])
        try:
            for minutes in (0, 1, 2, 6):
                now[0] = 1000.0 + 60 * minutes
                made = await asyncio.to_thread(finish, clean_db, succeeded=3)
                age(clean_db, made["succeeded"], 2 * DAY)
                await pruner.run_once()
        finally:
            await session.close()

    asyncio.run(rounds())
    reports = [e for e in seen if isinstance(e, events.PruneReport)]
    # The first round reports at its end; the next two only add up; the fourth,
    # more than 300 s after the first report, reports all three.
    # (Four statements a round: two for the three rows, one each for the other states.)
    assert [(dict(r.jobs), r.rounds, r.statements) for r in reports] == [
        ({"succeeded": 3}, 1, 4), ({"succeeded": 9}, 3, 12)]
    from pgqueue.observability.logs import log_event

    with caplog.at_level(logging.INFO, logger="pgqueue.worker"):
        log_event(reports[1])
    (record,) = [r for r in caplog.records if r.message == "pruned finished jobs from history"]
    assert record.levelno == logging.INFO
    assert (record.jobs, record.succeeded_jobs, record.rounds) == (9, 9, 3)  # type: ignore[attr-defined]


def test_rows_the_roll_up_has_not_counted_are_kept(clean_db: str) -> None:
    """The charts' roll-up counts history from a watermark on: what it has not
    reached yet stays, whatever the retention, so a lagging roll-up loses nothing."""
    made = finish(clean_db, succeeded=6)
    ids = made["succeeded"]
    age(clean_db, ids, 3 * 86_400, rolled_up=False)
    assert prune(clean_db).jobs == {}  # the roll-up never ran: nothing is pruned
    assert history(clean_db) == set(ids)
    # The roll-up has counted up to two days ago: the rows older than that go,
    # those it has not reached yet stay.
    age(clean_db, ids[:3], 4 * 86_400, rolled_up=False)
    fetch(clean_db, "UPDATE pgqueue.rollup_state SET rolled_until = now() - interval '3.5 days' "
                    "RETURNING 1")
    assert prune(clean_db).jobs == {("default", "succeeded"): 3}
    assert history(clean_db) == set(ids[3:])
