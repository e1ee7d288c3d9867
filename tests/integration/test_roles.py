"""Least privilege and secrets.

Two SQL roles, set up with the grants in :data:`ROLE_SETUP` (the same text the
README shows), on a fresh migrated database:

- a producer role that can enqueue (Python ``enqueue``/``enqueue_many`` and the
  SQL function) but cannot read jobs' args, read history or claim, and can only
  create queued jobs: not running ones, not queue settings, not jobs in (or the
  seal of) another role's batch. The same attacks are tried by a second
  producer and by a third role that still has the broader grants of earlier
  releases (:data:`EARLIER_PRODUCER_GRANTS`), which the schema itself refuses;
- a worker role that runs jobs but cannot change the schema.

Then: a password in a DSN never appears in the output of the CLI commands,
whatever fails (here the server does not answer on the DSN's port).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql

import pgqueue
import pgqueue.producer.batches
from pgqueue._sql import query
from tests.conftest import dsn_for
from tests.support import fetch, running_worker, scalar, wait_until

ROOT = Path(__file__).resolve().parent.parent.parent

# The grants, run by the schema owner after `pgqueue migrate` (re-run after a
# migration that adds tables). EXECUTE on pgqueue.enqueue is PUBLIC's by default.
ROLE_SETUP = """
-- Producer: enqueue only. The SQL function and the Python calls insert with the
-- caller's rights: INSERT on the columns a caller chooses (the others take their
-- defaults: state queued, attempt 0, no worker, created_at now()), the id
-- sequence, and SELECT on two columns: id (RETURNING) and unique_key (an
-- existing job's id is returned for a taken key). Not args. The insert trigger
-- reads queue names and records a new queue through pgqueue.add_queue.
GRANT USAGE ON SCHEMA pgqueue TO {producer};
GRANT INSERT (id, queue, task, args, priority, run_at, max_attempts, unique_key,
              trace_context, expires_at, depends_on, blocked, concurrency_key, batch_id,
              tags, meta)
    ON pgqueue.jobs TO {producer};
GRANT SELECT (id, unique_key) ON pgqueue.jobs TO {producer};
GRANT USAGE ON SEQUENCE pgqueue.jobs_id_seq TO {producer};
GRANT SELECT (name) ON pgqueue.queues TO {producer};
-- Batches: pgqueue.create_batch and seal_batch are SECURITY DEFINER; the SQL
-- enqueue checks that the batch a job joins is still open.
GRANT SELECT (id, sealed_at) ON pgqueue.job_batches TO {producer};

-- Worker: reads and writes rows, owns nothing, so it cannot alter the schema.
GRANT USAGE ON SCHEMA pgqueue TO {worker};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgqueue TO {worker};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgqueue TO {worker};
"""

# The producer grants the README gave before migration 0010 (INSERT on every
# column of jobs and on queues): the schema refuses the same attacks for them.
EARLIER_PRODUCER_GRANTS = """
GRANT USAGE ON SCHEMA pgqueue TO {producer};
GRANT INSERT ON pgqueue.jobs TO {producer};
GRANT SELECT (id, unique_key) ON pgqueue.jobs TO {producer};
GRANT USAGE ON SEQUENCE pgqueue.jobs_id_seq TO {producer};
GRANT SELECT, INSERT ON pgqueue.queues TO {producer};
GRANT SELECT (id, sealed_at) ON pgqueue.job_batches TO {producer};
"""


class Roles:
    def __init__(self, dsn: str, producer: str, worker: str, other: str, legacy: str) -> None:
        self.dsn = dsn
        self.producer = producer
        self.worker = worker
        self.other = other    # a second producer, with the same grants
        self.legacy = legacy  # a producer with EARLIER_PRODUCER_GRANTS

    def as_role(self, role: str) -> str:
        return dsn_for(self.dsn, user=role)


@pytest.fixture
def roles(admin_dsn: str, new_database: Any) -> Iterator[Roles]:
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        pgqueue.migrate(conn)
    suffix = uuid.uuid4().hex[:8]
    producer, worker = f"pgqueue_producer_{suffix}", f"pgqueue_worker_{suffix}"
    other, legacy = f"pgqueue_other_{suffix}", f"pgqueue_legacy_{suffix}"
    all_roles = (producer, worker, other, legacy)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for role in all_roles:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL(ROLE_SETUP).format(producer=sql.Identifier(producer),
                                                worker=sql.Identifier(worker)))
        conn.execute(sql.SQL(ROLE_SETUP).format(producer=sql.Identifier(other),
                                                worker=sql.Identifier(worker)))
        conn.execute(sql.SQL(EARLIER_PRODUCER_GRANTS).format(producer=sql.Identifier(legacy)))
    try:
        yield Roles(dsn, producer, worker, other, legacy)
    finally:
        name = conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
            for role in all_roles:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def refused(dsn: str, statement: str, params: Any = None) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(statement, params)
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


def test_producer_role_enqueues_but_cannot_read_args_or_claim(roles: Roles) -> None:
    with psycopg.connect(roles.dsn, autocommit=True) as conn:  # someone else's job
        secret = pgqueue.enqueue(conn, "app.pay", {"card": "4111"}, queue="private")
    producer = roles.as_role(roles.producer)
    with psycopg.connect(producer) as conn:
        one = pgqueue.enqueue(conn, "app.mail", {"to": "a@example.org"}, queue="mail",
                              unique_key="mail-1")
        same = pgqueue.enqueue(conn, "app.mail", {"to": "a@example.org"}, queue="mail",
                               unique_key="mail-1")
        many = pgqueue.enqueue_many(conn, [
            {"task": "app.mail", "args": {"n": i}, "queue": "new-queue",
             "unique_key": f"bulk-{i}"} for i in range(3)])
        again = pgqueue.enqueue_many(conn, [{"task": "app.mail", "unique_key": "bulk-1"}])
        by_sql = conn.execute("SELECT pgqueue.enqueue('app.mail', '{}'::jsonb, 'mail')"
                              ).fetchone()
    assert same == one and again == [many[1]] and by_sql is not None
    assert scalar(roles.dsn, "SELECT count(*) FROM pgqueue.jobs") == 6

    assert refused(producer, "SELECT args FROM pgqueue.jobs WHERE id = %s", [secret])
    assert refused(producer, "SELECT * FROM pgqueue.jobs")
    assert refused(producer, "SELECT * FROM pgqueue.finished_jobs")
    assert refused(producer, "SELECT * FROM pgqueue.all_jobs")
    assert refused(producer, "SELECT * FROM pgqueue.queue_stats")
    assert refused(producer, query("job_claim"), {
        "queues": ["private"], "slots": [10], "tasks": ["app.pay"], "limit": 10,
        "worker_id": str(uuid.uuid4()), "key_tasks": [], "key_caps": [],
        "bases": None, "strides": None, "fair": None, "cursors": None, "async_commit": False})
    assert refused(producer, "UPDATE pgqueue.jobs SET state = 'running'")
    assert refused(producer, "DELETE FROM pgqueue.jobs")
    assert scalar(roles.dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s",
                  [secret]) == "queued"


def test_producer_role_enqueues_tags_meta_throttled_and_debounced_jobs(roles: Roles) -> None:
    producer = roles.as_role(roles.producer)
    with psycopg.connect(producer) as conn:
        tagged = pgqueue.enqueue(conn, "app.mail", tags=["a"], meta={"m": 1})
        copied = pgqueue.enqueue_many(conn, [{"task": "app.mail", "tags": ["b"],
                                              "meta": {"m": 2}}])
        unnested = pgqueue.enqueue_many(conn, [{"task": "app.mail", "unique_key": "u",
                                                "tags": ["c"]}])
        by_sql = conn.execute("SELECT pgqueue.enqueue('app.mail', tags => '{d,d}', "
                              "meta => '{\"m\": 4}')").fetchone()
        throttled = pgqueue.enqueue(conn, "app.mail", unique_key="t", unique_for=600)
        debounced = [pgqueue.enqueue(conn, "app.mail", {"v": v}, unique_key="d", debounce=60,
                                     on_conflict="replace") for v in (1, 2)]
        conn.commit()
    assert by_sql is not None and debounced[0] == debounced[1]
    with psycopg.connect(roles.dsn, autocommit=True) as conn:  # the worker finishes it
        conn.execute("WITH gone AS (DELETE FROM pgqueue.jobs j WHERE j.id = %s RETURNING j) "
                     "INSERT INTO pgqueue.finished_jobs SELECT (pgqueue.finished_row("
                     "g.j, 'succeeded', NULL, '[]')).* FROM gone g", [throttled])
    with psycopg.connect(producer) as conn:  # history holds the key, unread by the producer
        assert pgqueue.enqueue(conn, "app.mail", unique_key="t", unique_for=600) == throttled
        conn.commit()
    assert fetch(roles.dsn, "SELECT id, tags, meta, args FROM pgqueue.jobs ORDER BY id") == [
        (tagged, ["a"], {"m": 1}, {}), (copied[0], ["b"], {"m": 2}, {}),
        (unnested[0], ["c"], {}, {}), (by_sql[0], ["d"], {"m": 4}, {}),
        (debounced[0], [], {}, {"v": 2})]
    assert refused(producer, "SELECT * FROM pgqueue.finished_jobs")
    assert refused(producer, "UPDATE pgqueue.jobs SET run_at = now()")


def test_worker_role_runs_jobs_but_cannot_alter_the_schema(roles: Roles) -> None:
    with psycopg.connect(roles.dsn, autocommit=True) as conn:
        job = pgqueue.enqueue(conn, "roles.double", {"n": 21}, queue="roles")
    tasks = pgqueue.Registry()

    @tasks.task(name="roles.double", queue="roles")
    def double(n: int) -> int:
        return n * 2

    worker = roles.as_role(roles.worker)
    with running_worker(worker, tasks) as w:
        wait_until(lambda: w.finished("succeeded"), timeout=30, message="the job to succeed")
    assert scalar(roles.dsn, "SELECT result FROM pgqueue.finished_jobs WHERE id = %s",
                  [job]) == 42
    for statement in ("CREATE TABLE pgqueue.extra (x int)",
                      "ALTER TABLE pgqueue.jobs ADD COLUMN extra int",
                      "ALTER TABLE pgqueue.jobs DROP CONSTRAINT jobs_attempt_range",
                      "DROP TABLE pgqueue.finished_jobs",
                      "CREATE INDEX ON pgqueue.jobs (args)",
                      "CREATE OR REPLACE FUNCTION pgqueue.append_error(errors jsonb, "
                      "error jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT errors'",
                      "CREATE TABLE public.extra (x int)"):
        assert refused(worker, statement), statement
    with psycopg.connect(worker, autocommit=True) as conn, pytest.raises(psycopg.Error):
        # Migrating needs the owner: the worker role cannot take over the schema.
        conn.execute("CREATE SCHEMA pgqueue_other")


def test_producer_role_runs_batches_and_the_worker_role_finishes_them(roles: Roles) -> None:
    producer = roles.as_role(roles.producer)
    with psycopg.connect(producer) as conn, \
            pgqueue.batch(conn, name="roles", callback="roles.report",
                          callback_args={"to": "ops"}) as b:
        b.enqueue("roles.double", {"n": 1})                                 # SQL function
        b.enqueue_many([{"task": "roles.double", "args": {"n": n}} for n in (2, 3)])  # COPY
        b.enqueue_many([{"task": "roles.double", "args": {"n": 4}, "unique_key": "r4"}])
    with psycopg.connect(producer) as conn, pgqueue.batch(conn, callback="roles.report") as e:
        pass  # empty: sealing finishes it and enqueues the callback at once
    assert refused(producer, "SELECT * FROM pgqueue.batches")
    assert refused(producer, "SELECT name FROM pgqueue.job_batches")
    assert refused(producer, "UPDATE pgqueue.job_batches SET finished_at = now()")

    tasks = pgqueue.Registry()
    reports: list[dict[str, Any]] = []

    @tasks.task(name="roles.double")
    def double(n: int) -> int:
        return n * 2

    @tasks.task(name="roles.report")
    def report(**args: Any) -> None:
        reports.append(args)

    with running_worker(roles.as_role(roles.worker), tasks):
        wait_until(lambda: len(reports) == 2, timeout=30, message="both callbacks")
    assert sorted(reports, key=lambda r: r["batch_id"]) == [
        {"to": "ops", "batch_id": b.id}, {"batch_id": e.id}]
    with psycopg.connect(roles.as_role(roles.worker)) as conn:
        done = pgqueue.get_batch(conn, b.id)
    assert done is not None and (done.total, done.succeeded, done.finished) == (4, 4, True)


# --- a producer creates queued jobs only, and only in its own batches --------------------------

# Rows a producer must not create, by plain SQL. The first is the attack: a
# running job under a made-up worker whose heartbeat never ages holds its
# unique key for ever (never reaped; cancel only answers "requested").
FORGED_JOBS = {
    "running, never reaped":
        "INSERT INTO pgqueue.jobs (task, queue, unique_key, state, worker_id, started_at,"
        " heartbeat_at) VALUES ('app.pay', 'payments', 'order-7', 'running',"
        " gen_random_uuid(), now(), '9999-01-01')",
    "attempts used up":
        "INSERT INTO pgqueue.jobs (task, attempt, max_attempts) VALUES ('app.pay', 5, 5)",
    "cancel requested":
        "INSERT INTO pgqueue.jobs (task, cancel_requested_at) VALUES ('app.pay', now())",
    "backdated":
        "INSERT INTO pgqueue.jobs (task, created_at) VALUES ('app.pay', now() - interval '1 day')",
}


@pytest.mark.parametrize("who", ["producer", "legacy"])
def test_producer_cannot_insert_a_running_job_that_holds_a_unique_key(
        roles: Roles, who: str) -> None:
    dsn = roles.as_role(getattr(roles, who))
    for name, statement in FORGED_JOBS.items():
        assert refused(dsn, statement), name
    with psycopg.connect(dsn, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege), \
            conn.cursor().copy("COPY pgqueue.jobs (task, state, worker_id) FROM STDIN") as copy:
        copy.write_row(("app.pay", "running", str(uuid.uuid4())))
    assert scalar(roles.dsn, "SELECT count(*) FROM pgqueue.jobs") == 0

    # The key is free: the real job takes it, queued, as a job any worker can run.
    with psycopg.connect(dsn) as conn:
        job = pgqueue.enqueue(conn, "app.pay", queue="payments", unique_key="order-7")
    assert fetch(roles.dsn, "SELECT state::text, attempt, worker_id, heartbeat_at FROM"
                 " pgqueue.jobs WHERE id = %s", [job]) == [("queued", 0, None, None)]
    assert refused(dsn, "SELECT pgqueue.cancel(%s)", [job])
    with psycopg.connect(roles.dsn, autocommit=True) as conn:
        assert pgqueue.cancel(conn, job).value == "cancelled"


def test_producer_cannot_get_past_the_checks_with_its_own_functions(roles: Roles) -> None:
    # A role that may create objects somewhere puts them before pg_catalog in its
    # search_path: the checks must still use the built-in functions.
    with psycopg.connect(roles.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA own AUTHORIZATION {}").format(
            sql.Identifier(roles.legacy)))
    with psycopg.connect(roles.as_role(roles.legacy), autocommit=True) as conn:
        conn.execute("CREATE FUNCTION own.has_table_privilege(text, text) RETURNS boolean"
                     " LANGUAGE sql AS 'SELECT true'")
        conn.execute("CREATE FUNCTION own.now() RETURNS timestamptz"
                     " LANGUAGE sql AS $$SELECT '2000-01-01'::timestamptz$$")
        conn.execute("SET search_path = own, pg_catalog")
        for statement in FORGED_JOBS.values():
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO pgqueue.queues (name, paused) VALUES ('payments', true)")
    assert scalar(roles.dsn, "SELECT count(*) FROM pgqueue.jobs") == 0


@pytest.mark.parametrize("who", ["producer", "legacy"])
def test_producer_cannot_pause_or_limit_a_queue_before_its_first_job(
        roles: Roles, who: str) -> None:
    dsn = roles.as_role(getattr(roles, who))
    for statement in (
            "INSERT INTO pgqueue.queues (name, paused, concurrency_limit)"
            " VALUES ('payments', true, 1)",
            "INSERT INTO pgqueue.queues (name, rate_limit, rate_period)"
            " VALUES ('payments', 1, 3600)",
            "UPDATE pgqueue.queues SET paused = true",
            "SELECT pgqueue.pause_queue('payments')",
            "SELECT pgqueue.resume_queue('payments')",
            "SELECT pgqueue.set_concurrency_limit('payments', 1)"):
        assert refused(dsn, statement), statement
    assert scalar(roles.dsn, "SELECT count(*) FROM pgqueue.queues") == 0
    with psycopg.connect(dsn) as conn:  # each path still records its new queue
        pgqueue.enqueue(conn, "app.pay", queue="payments")
        pgqueue.enqueue_many(conn, [{"task": "app.pay", "queue": "refunds"}])
        conn.execute("SELECT pgqueue.enqueue('app.pay', '{}'::jsonb, 'invoices')")
    assert fetch(roles.dsn, "SELECT name::text, paused, concurrency_limit, rate_limit"
                 " FROM pgqueue.queues ORDER BY name") == [
        ("invoices", False, None, None), ("payments", False, None, None),
        ("refunds", False, None, None)]


def test_producer_cannot_seal_or_join_another_producers_batch(roles: Roles) -> None:
    owner = roles.as_role(roles.producer)
    with psycopg.connect(owner) as conn, \
            pgqueue.batch(conn, name="mine", callback="app.report") as mine:
        mine.enqueue("app.pay", {"n": 1})
        conn.commit()  # the open batch is visible to every role now
        for who in (roles.other, roles.legacy):
            dsn = roles.as_role(who)
            assert refused(dsn, "SELECT pgqueue.seal_batch(%s)", [mine.id]), who
            assert refused(dsn, "SELECT pgqueue.enqueue('app.pay', batch_id => %s)",
                           [mine.id]), who
            assert refused(dsn, "INSERT INTO pgqueue.jobs (task, batch_id)"
                           " VALUES ('app.pay', %s)", [mine.id]), who
            with psycopg.connect(dsn) as theirs, \
                    pytest.raises(psycopg.errors.InsufficientPrivilege, match="belongs to"):
                pgqueue.enqueue_many(theirs, [{"task": "app.pay"}],  # COPY
                                     batch=pgqueue.producer.batches.Batch(theirs, mine.id))
        # The owner's next adds work: nobody else sealed the batch.
        mine.enqueue("app.pay", {"n": 2})
        mine.enqueue_many([{"task": "app.pay", "args": {"n": 3}}])
        mine.enqueue_many([{"task": "app.pay", "args": {"n": 4}, "unique_key": "b4"}])
    with psycopg.connect(roles.dsn) as conn:
        info = pgqueue.get_batch(conn, mine.id)
    assert info is not None and (info.total, info.sealed_at is not None) == (4, True)

    # Sealed now: no role without UPDATE on pgqueue.jobs adds to it, by any path.
    with psycopg.connect(owner) as conn, pytest.raises(pgqueue.InvalidJobError, match="sealed"):
        pgqueue.enqueue_many(conn, [{"task": "app.pay"}],
                             batch=pgqueue.producer.batches.Batch(conn, mine.id))
    assert not refused(roles.dsn, "INSERT INTO pgqueue.jobs (task, batch_id)"  # the owner can
                       " VALUES ('app.pay', %s)", [mine.id])

    # The schema owner, and the worker role (it may update batches), seal any batch.
    left_open = [scalar(owner, "SELECT pgqueue.create_batch('left open')") for _ in "ab"]
    assert scalar(roles.dsn, "SELECT pgqueue.seal_batch(%s)", [left_open[0]]) is True
    assert scalar(roles.as_role(roles.worker), "SELECT pgqueue.seal_batch(%s)",
                  [left_open[1]]) is True


def test_producer_jobs_take_the_defaults_of_the_columns_it_cannot_insert(
        roles: Roles) -> None:
    producer = roles.as_role(roles.producer)
    with psycopg.connect(producer, autocommit=True) as conn:  # each statement commits
        one = pgqueue.enqueue(conn, "app.mail", delay=60)
        copied = pgqueue.enqueue_many(conn, [{"task": "app.mail", "args": {"n": n}, "delay": 60}
                                             for n in range(3)])
        keyed = pgqueue.enqueue_many(conn, [{"task": "app.mail", "unique_key": f"k{n}",
                                             "delay": 60, "depends_on": [one]}
                                            for n in range(2)])
        by_sql = scalar(producer, "SELECT pgqueue.enqueue('app.mail', delay_seconds => 60)")

    async def enqueue_async() -> list[int]:
        async with await psycopg.AsyncConnection.connect(producer) as aconn:
            return await pgqueue.enqueue_many_async(aconn, [{"task": "app.mail", "delay": 60}])

    ids = [one, *copied, *keyed, by_sql, *asyncio.run(enqueue_async())]
    rows = fetch(roles.dsn, "SELECT id, state::text, attempt, worker_id, started_at,"
                 " heartbeat_at, run_at - created_at BETWEEN interval '50 s' AND interval '60 s'"
                 " FROM pgqueue.jobs ORDER BY id")
    assert rows == [(i, "queued", 0, None, None, None, True) for i in sorted(ids)]


# --- secrets in the CLI's output ---------------------------------------------------------------

SECRET = "S3cret-Pa55word"
BAD_DSNS = [
    f"postgresql://pgqueue_app:{SECRET}@127.0.0.1:1/app",
    f"host=127.0.0.1 port=1 user=pgqueue_app password={SECRET} dbname=app",
]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgqueue", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("dsn", BAD_DSNS, ids=["url", "key-value"])
@pytest.mark.parametrize("command", [
    ["migrate"], ["enqueue", "app.hello", "--args", "{}"], ["cancel", "1"],
    ["queue", "pause", "app"],
])
def test_cli_never_prints_the_password(dsn: str, command: list[str]) -> None:
    for result in (cli(*command, "--dsn", dsn), cli(*command, env={"PGQUEUE_DSN": dsn})):
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert output.strip(), "no error message at all"
        assert SECRET not in output, output


@pytest.mark.parametrize("dsn", BAD_DSNS, ids=["url", "key-value"])
def test_worker_never_logs_the_password(dsn: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "worker", "--app", "tests.apps.worker_app:tasks",
             "--dsn", dsn, "--log-format", "json"], cwd=ROOT, stdout=out,
            stderr=subprocess.STDOUT, env={**os.environ, "PGQUEUE_METRICS_PORT": "0"})
    try:
        wait_until(lambda: "cannot connect to the database" in log.read_text(), timeout=30,
                   message="the worker to report the database unreachable")
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert SECRET not in log.read_text(), log.read_text()


def test_producer_role_meets_a_bounded_queue_but_cannot_change_its_bounds(roles: Roles) -> None:
    with psycopg.connect(roles.dsn, autocommit=True) as conn:
        pgqueue.set_max_depth(conn, "capped", 3)
        pgqueue.set_warn_depth(conn, "capped", 1)
    producer = roles.as_role(roles.producer)
    with psycopg.connect(producer) as conn:
        pgqueue.enqueue(conn, "app.mail", queue="capped")
        pgqueue.enqueue_many(conn, [{"task": "app.mail", "queue": "capped"}])
        conn.execute("SELECT pgqueue.enqueue('app.mail', '{}'::jsonb, 'capped')")
        with pytest.raises(pgqueue.QueueFullError):
            pgqueue.enqueue(conn, "app.mail", queue="capped")
        with pytest.raises(pgqueue.QueueFullError):
            pgqueue.enqueue_many(conn, [{"task": "app.mail", "queue": "capped"}])
        conn.commit()
    assert scalar(roles.dsn, "SELECT count(*) FROM pgqueue.jobs WHERE queue = 'capped'") == 3
    for statement in ("SELECT pgqueue.set_max_depth('capped', 100)",
                      "SELECT pgqueue.set_warn_depth('capped', NULL)",
                      "INSERT INTO pgqueue.queues (name, max_depth) VALUES ('fresh', 1)"):
        assert refused(producer, statement), statement
