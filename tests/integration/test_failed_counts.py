"""queue_stats' failed count (pgqueue.failed_counts, migration 0007) against history.

After every path that adds or removes failed rows of pgqueue.finished_jobs, the
deltas sum, per queue, to ``count(*) ... WHERE state = 'failed'``, and so does
the view's ``failed`` column.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue._sql import migrations, query
from tests.support import fetch, running_worker, scalar, wait_until

GONE_WORKER = uuid.UUID("00000000-0000-0000-0000-0000000000dd")
# name: (event, level, function)
TRIGGERS = {
    "finished_jobs_count_inserted": ("INSERT", "ROW", "pgqueue.failed_counts_add"),
    "finished_jobs_count_deleted": ("DELETE", "STATEMENT", "pgqueue.failed_counts_track"),
    "finished_jobs_count_updated": ("UPDATE", "STATEMENT", "pgqueue.failed_counts_track"),
    "finished_jobs_count_truncated": ("TRUNCATE", "STATEMENT", "pgqueue.failed_counts_track"),
}


def counted(dsn: str) -> dict[str, int]:
    """The failed count of each queue as the deltas say (queues at 0 left out)."""
    rows = fetch(dsn, "SELECT queue, sum(n) FROM pgqueue.failed_counts "
                      "GROUP BY queue HAVING sum(n) <> 0")
    return {queue: int(n) for queue, n in rows}


def actual(dsn: str) -> dict[str, int]:
    """The failed jobs of each queue, counted in history."""
    rows = fetch(dsn, "SELECT queue, count(*) FROM pgqueue.finished_jobs "
                      "WHERE state = 'failed' GROUP BY queue")
    return {queue: int(n) for queue, n in rows}


def assert_exact(dsn: str) -> dict[str, int]:
    """The deltas and queue_stats agree with history; return the counts."""
    expected = actual(dsn)
    assert counted(dsn) == expected
    shown = dict(fetch(dsn, "SELECT queue, failed FROM pgqueue.queue_stats"))
    assert shown == {queue: expected.get(queue, 0) for queue in shown}
    return expected


def add_history(conn: psycopg.Connection[Any], queue: str, state: str, *, n: int = 1,
                ago: str = "0 seconds") -> None:
    """``n`` finished jobs of ``queue`` in ``state``, finished ``ago``, in one statement."""
    conn.execute("INSERT INTO pgqueue.queues (name) VALUES (%s) ON CONFLICT DO NOTHING",
                 [queue])
    conn.execute(
        """
        INSERT INTO pgqueue.finished_jobs
            (id, queue, task, args, priority, state, attempt, max_attempts, run_at,
             created_at, started_at, finished_at, last_error, errors)
        SELECT nextval(pg_get_serial_sequence('pgqueue.jobs', 'id')), %(queue)s, 't',
               '{}', 0, %(state)s::pgqueue.job_state, 1, 1, now() - %(ago)s::interval,
               now() - %(ago)s::interval, now() - %(ago)s::interval,
               now() - %(ago)s::interval,
               CASE WHEN %(state)s = 'failed' THEN 'boom' END, '[]'
        FROM generate_series(1, %(n)s)
        """,
        {"queue": queue, "state": state, "n": n, "ago": ago},
    )


@pytest.fixture
def seeded(clean_db: str) -> str:
    """History of two queues: alpha 5 failed, beta 3 failed, succeeded and cancelled too."""
    with psycopg.connect(clean_db, autocommit=True) as conn:
        add_history(conn, "alpha", "failed", n=3, ago="3 days")
        add_history(conn, "alpha", "failed", n=2)
        add_history(conn, "alpha", "succeeded", n=4, ago="3 days")
        add_history(conn, "beta", "failed", n=3)
        add_history(conn, "beta", "cancelled", n=2)
    assert assert_exact(clean_db) == {"alpha": 5, "beta": 3}
    return clean_db


def idle_registry() -> pgqueue.Registry:
    """A registry for a worker that only leads: reaper, expiry, compaction."""
    tasks = pgqueue.Registry()
    tasks.task(lambda: None, name="idle")
    return tasks


# --- the worker's paths --------------------------------------------------------------

def test_failing_jobs_of_a_real_worker_are_counted_and_compacted(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="flip")
    def flip(fail: bool) -> None:
        if fail:
            raise pgqueue.PermanentError("no")

    with running_worker(clean_db, tasks, queues=["alpha", "beta"], concurrency=8) as w:
        with psycopg.connect(clean_db) as conn:
            pgqueue.enqueue_many(conn, [
                {"task": "flip", "args": {"fail": i % 3 == 0},
                 "queue": ("alpha", "beta")[i % 2]}
                for i in range(60)])
        wait_until(lambda: len(w.finished()) == 60, message="60 outcomes")
        assert assert_exact(clean_db) == {"alpha": 10, "beta": 10}
        # The leader folds the deltas of many completion statements into one row each.
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.failed_counts") == 2,
                   message="compaction by the leader")
    assert assert_exact(clean_db) == {"alpha": 10, "beta": 10}


def test_the_reaper_failing_a_stalled_job_is_counted(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        stalled = conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, state, attempt, max_attempts, started_at,"
            " heartbeat_at, worker_id) VALUES ('alpha', 'gone', 'running', 1, 1,"
            " now() - interval '1 minute', now() - interval '1 minute', %s) RETURNING id",
            [GONE_WORKER]).fetchone()
    assert stalled is not None
    with running_worker(seeded, idle_registry()):
        wait_until(lambda: fetch(seeded, "SELECT state::text FROM pgqueue.finished_jobs "
                                         "WHERE id = %s", [stalled[0]]) == [("failed",)],
                   message="the reaper fails the stalled job")
    assert assert_exact(seeded) == {"alpha": 6, "beta": 3}


def test_expiry_and_cancel_leave_the_count_alone(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        expiring = pgqueue.enqueue(conn, "later", queue="alpha", delay=0.3, ttl=0.1)
        doomed = pgqueue.enqueue(conn, "later", queue="beta", delay=60)
        assert pgqueue.cancel(conn, doomed) == "cancelled"
    with running_worker(seeded, idle_registry()):
        wait_until(lambda: fetch(seeded, "SELECT last_error FROM pgqueue.finished_jobs "
                                         "WHERE id = %s", [expiring]) == [("expired",)],
                   message="the leader expires the job")
    assert assert_exact(seeded) == {"alpha": 5, "beta": 3}


def test_concurrent_failing_completions_with_compaction_lose_nothing(clean_db: str) -> None:
    """Eight connections complete 50 jobs each, 5 at a time, half of them failed, while
    another connection compacts in a loop: every failure is counted once."""
    threads, per_thread, batch = 8, 50, 5
    workers = [uuid.uuid4() for _ in range(threads)]
    with psycopg.connect(clean_db, autocommit=True) as conn:
        for worker_id in workers:
            conn.execute(
                "INSERT INTO pgqueue.jobs (queue, task, state, attempt, started_at,"
                " heartbeat_at, worker_id, claim_token)"
                " SELECT 'q' || g %% 3, 't', 'running', 1, now(), now(), %s, 1"
                " FROM generate_series(1, %s) g", [worker_id, per_thread])
    start = threading.Barrier(threads + 1)
    done = threading.Event()
    errors: list[BaseException] = []

    def complete(worker_id: uuid.UUID) -> None:
        try:
            with psycopg.connect(clean_db, autocommit=True) as conn:
                ids = [r[0] for r in conn.execute(
                    "SELECT id FROM pgqueue.jobs WHERE worker_id = %s ORDER BY id",
                    [worker_id])]
                start.wait()
                for i in range(0, len(ids), batch):
                    chunk = ids[i:i + batch]
                    applied = conn.execute(query("job_complete_many"), {
                        "ids": chunk, "tokens": [1] * len(chunk),
                        "outcomes": ["failed" if n % 2 else "succeeded" for n in chunk],
                        "delays": [0.0] * len(chunk),
                        "errors": ['{"message": "boom"}'] * len(chunk),
                        "results": [None] * len(chunk), "max_snoozes": None,
                        "progress": None, "meta": None,
                        "worker_id": worker_id}).fetchall()
                    assert len(applied) == len(chunk)
        except BaseException as exc:
            errors.append(exc)

    def compact() -> None:
        try:
            with psycopg.connect(clean_db, autocommit=True) as conn:
                start.wait()
                while not done.is_set():
                    conn.execute(query("failed_counts_compact"))
        except BaseException as exc:
            errors.append(exc)

    completers = [threading.Thread(target=complete, args=(w,)) for w in workers]
    compactor = threading.Thread(target=compact)
    for thread in [*completers, compactor]:
        thread.start()
    for thread in completers:
        thread.join(60)
    done.set()
    compactor.join(60)
    assert not errors, errors
    expected = assert_exact(clean_db)
    odd = scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs WHERE id % 2 = 1")
    assert sum(expected.values()) == odd == threads * per_thread // 2
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0


# --- by hand -------------------------------------------------------------------------

def test_retry_by_hand_takes_failed_jobs_out_of_the_count(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        one = scalar(seeded, "SELECT min(id) FROM pgqueue.finished_jobs "
                             "WHERE queue = 'beta' AND state = 'failed'")
        assert pgqueue.retry(conn, one) == "retried"
        assert assert_exact(seeded) == {"alpha": 5, "beta": 2}
        assert pgqueue.retry_failed(conn, "alpha") == 5
        assert assert_exact(seeded) == {"beta": 2}
        assert pgqueue.retry_failed(conn) == 2
    assert assert_exact(seeded) == {}


def test_prune_removes_old_failures_from_the_count(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        assert pgqueue.prune(conn, 86400, batch=2) == 7
    assert assert_exact(seeded) == {"alpha": 2, "beta": 3}


def test_plain_delete_update_and_insert_by_hand(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute("DELETE FROM pgqueue.finished_jobs WHERE id IN (SELECT min(id) FROM "
                     "pgqueue.finished_jobs WHERE queue = 'beta' AND state = 'failed')")
        assert assert_exact(seeded) == {"alpha": 5, "beta": 2}
        # Two failures of alpha become successes, then every success of alpha a failure.
        conn.execute("UPDATE pgqueue.finished_jobs SET state = 'succeeded' WHERE id IN "
                     "(SELECT id FROM pgqueue.finished_jobs WHERE queue = 'alpha' AND "
                     "state = 'failed' ORDER BY id LIMIT 2)")
        assert assert_exact(seeded) == {"alpha": 3, "beta": 2}
        conn.execute("UPDATE pgqueue.finished_jobs SET state = 'failed' "
                     "WHERE queue = 'alpha' AND state = 'succeeded'")
        assert assert_exact(seeded) == {"alpha": 9, "beta": 2}
        # A failure moved to another queue: one less here, one more there.
        conn.execute("INSERT INTO pgqueue.queues (name) VALUES ('gamma')")
        conn.execute("UPDATE pgqueue.finished_jobs SET queue = 'gamma' WHERE queue = 'beta'")
        assert assert_exact(seeded) == {"alpha": 9, "gamma": 2}
        conn.execute("DELETE FROM pgqueue.finished_jobs WHERE queue = 'alpha'")
        assert assert_exact(seeded) == {"gamma": 2}
        # Statements without a failed row append nothing.
        before = scalar(seeded, "SELECT count(*) FROM pgqueue.failed_counts")
        add_history(conn, "gamma", "succeeded", n=10)
        conn.execute("DELETE FROM pgqueue.finished_jobs WHERE state = 'succeeded'")
        assert scalar(seeded, "SELECT count(*) FROM pgqueue.failed_counts") == before


def test_a_rolled_back_statement_leaves_no_delta(seeded: str) -> None:
    with psycopg.connect(seeded) as conn:
        add_history(conn, "alpha", "failed", n=7)
        conn.execute("DELETE FROM pgqueue.finished_jobs WHERE queue = 'beta'")
        assert counted_in(conn) == {"alpha": 12}
        conn.rollback()
    assert assert_exact(seeded) == {"alpha": 5, "beta": 3}


def counted_in(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT queue, sum(n) FROM pgqueue.failed_counts "
                        "GROUP BY queue HAVING sum(n) <> 0").fetchall()
    return {queue: int(n) for queue, n in rows}


def test_truncate_clears_the_counts(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.finished_jobs")
        assert scalar(seeded, "SELECT count(*) FROM pgqueue.failed_counts") == 0
        assert assert_exact(seeded) == {}
        add_history(conn, "beta", "failed", n=2)
    assert assert_exact(seeded) == {"beta": 2}


def test_compaction_folds_each_queue_into_one_row(seeded: str) -> None:
    with psycopg.connect(seeded, autocommit=True) as conn:
        add_history(conn, "beta", "failed", n=1)
        conn.execute("DELETE FROM pgqueue.finished_jobs WHERE queue = 'beta'")
        rows = scalar(seeded, "SELECT count(*) FROM pgqueue.failed_counts")
        assert rows == 10  # alpha: +1 five times; beta: +1 four times, then -4
        assert conn.execute(query("failed_counts_compact")).fetchall() == [(rows,)]
        # alpha: one row of 5; beta summed to 0: no row at all.
        assert fetch(seeded, "SELECT queue, n FROM pgqueue.failed_counts") == [("alpha", 5)]
        assert conn.execute(query("failed_counts_compact")).fetchall() == [(0,)]
    assert assert_exact(seeded) == {"alpha": 5}


# --- the triggers themselves -----------------------------------------------------------

def test_history_has_the_four_counting_triggers_enabled(dsn: str) -> None:
    rows = fetch(dsn, """
        SELECT t.tgname, t.tgenabled,
               CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' WHEN t.tgtype & 8 <> 0 THEN 'DELETE'
                    WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' ELSE 'TRUNCATE' END,
               CASE WHEN t.tgtype & 1 <> 0 THEN 'ROW' ELSE 'STATEMENT' END,
               t.tgfoid::regproc::text, pg_get_triggerdef(t.oid)
        FROM pg_trigger t
        WHERE t.tgrelid = 'pgqueue.finished_jobs'::regclass
          AND t.tgname LIKE 'finished_jobs_count_%'""")
    # Enabled ('O': in every session but replicas), of the right kind.
    assert {name: (enabled, event, level, function)
            for name, enabled, event, level, function, _ in rows} == {
        name: ("O", *spec) for name, spec in TRIGGERS.items()}
    definition = {name: text for name, *_, text in rows}
    # Only failed rows reach the insert trigger's function.
    assert "WHEN ((new.state = 'failed'::pgqueue.job_state))" in definition[
        "finished_jobs_count_inserted"]


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_without_its_trigger_the_count_goes_wrong(seeded: str, trigger: str) -> None:
    """The checks above notice a missing trigger: with one disabled, its path
    leaves the count off."""
    statements = {
        "INSERT": "INSERT INTO pgqueue.finished_jobs SELECT id + 1000000, queue, task, args,"
                  " priority, state, attempt, max_attempts, run_at, created_at, started_at,"
                  " finished_at, worker_id, unique_key, last_error, errors, trace_context,"
                  " timeout_seconds, expires_at, cancel_requested_at, depends_on, batch_id,"
                  " concurrency_key, result FROM pgqueue.finished_jobs",
        "DELETE": "DELETE FROM pgqueue.finished_jobs WHERE queue = 'beta'",
        "UPDATE": "UPDATE pgqueue.finished_jobs SET state = 'succeeded'",
        "TRUNCATE": "TRUNCATE pgqueue.finished_jobs",
    }
    with psycopg.connect(seeded) as conn:
        conn.execute(f"ALTER TABLE pgqueue.finished_jobs DISABLE TRIGGER {trigger}")
        conn.execute(statements[TRIGGERS[trigger][0]])
        failed = conn.execute("SELECT queue, count(*) FROM pgqueue.finished_jobs "
                              "WHERE state = 'failed' GROUP BY queue").fetchall()
        assert counted_in(conn) != {queue: int(n) for queue, n in failed}
        conn.rollback()
    assert assert_exact(seeded) == {"alpha": 5, "beta": 3}


# --- the migration ---------------------------------------------------------------------

def migrate_to(conn: psycopg.Connection[Any], version: int) -> None:
    """Apply migrations up to ``version`` as pgqueue.migrate does, one transaction each."""
    for migration in migrations():
        if migration.version > version:
            return
        with conn.transaction():
            conn.execute(query("migration_table_create"))
            conn.execute(migration.sql)
            conn.execute(query("migration_record"),
                         {"version": migration.version, "name": migration.name})


def waiting_on_a_lock(dsn: str, application_name: str) -> bool:
    return bool(scalar(dsn, "SELECT count(*) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND application_name = %s"
                            " AND wait_event_type = 'Lock'", [application_name]))


def test_the_migration_counts_existing_history_and_misses_no_writer(
        new_database: Any) -> None:
    """0007 counts the failed jobs already in history. A writer that has not committed
    when it starts is waited for and counted; one that comes while it runs waits
    and is counted by the new triggers."""
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate_to(conn, 6)
        add_history(conn, "alpha", "failed", n=4)
        add_history(conn, "alpha", "succeeded", n=3)
        add_history(conn, "beta", "failed", n=2)
    errors: list[BaseException] = []

    def in_thread(name: str, work: Any) -> threading.Thread:
        def run() -> None:
            try:
                with psycopg.connect(dsn, autocommit=True, application_name=name) as conn:
                    work(conn)
            except BaseException as exc:
                errors.append(exc)
        thread = threading.Thread(target=run, name=name)
        thread.start()
        return thread

    with psycopg.connect(dsn) as early:
        add_history(early, "beta", "failed", n=5)  # not committed yet
        migrating = in_thread("test-migrate", pgqueue.migrate)
        wait_until(lambda: waiting_on_a_lock(dsn, "test-migrate"), message="migration waits")
        late = in_thread("test-late-writer",
                         lambda conn: add_history(conn, "gamma", "failed", n=6))
        wait_until(lambda: waiting_on_a_lock(dsn, "test-late-writer"),
                   message="late writer waits")
        early.commit()
    migrating.join(60)
    late.join(60)
    assert not errors, errors
    assert assert_exact(dsn) == {"alpha": 4, "beta": 7, "gamma": 6}
