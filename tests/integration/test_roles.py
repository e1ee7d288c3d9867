"""Least privilege and secrets.

Two SQL roles, set up with the grants in :data:`ROLE_SETUP` (the same text the
README shows), on a fresh migrated database:

- a producer role that can enqueue (Python ``enqueue``/``enqueue_many`` and the
  SQL function) but cannot read jobs' args, read history or claim;
- a worker role that runs jobs but cannot change the schema.

Then: a password in a DSN never appears in the output of the CLI commands,
whatever fails (here the server does not answer on the DSN's port).
"""

from __future__ import annotations

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
from pgqueue._sql import query
from tests.conftest import dsn_for
from tests.support import running_worker, scalar, wait_until

ROOT = Path(__file__).resolve().parent.parent.parent

# The grants, run by the schema owner after `pgqueue migrate` (re-run after a
# migration that adds tables). EXECUTE on pgqueue.enqueue is PUBLIC's by default.
ROLE_SETUP = """
-- Producer: enqueue only. The SQL function runs with the caller's rights, so the
-- role needs INSERT on jobs, the id sequence and the queues table (the insert
-- trigger records new queues), and SELECT on two columns: id (RETURNING) and
-- unique_key (an existing job's id is returned for a taken key). Not args.
GRANT USAGE ON SCHEMA pgqueue TO {producer};
GRANT INSERT ON pgqueue.jobs TO {producer};
GRANT SELECT (id, unique_key) ON pgqueue.jobs TO {producer};
GRANT USAGE ON SEQUENCE pgqueue.jobs_id_seq TO {producer};
GRANT SELECT, INSERT ON pgqueue.queues TO {producer};
-- Batches: pgqueue.create_batch and seal_batch are SECURITY DEFINER; the SQL
-- enqueue checks that the batch a job joins is still open.
GRANT SELECT (id, sealed_at) ON pgqueue.job_batches TO {producer};

-- Worker: reads and writes rows, owns nothing, so it cannot alter the schema.
GRANT USAGE ON SCHEMA pgqueue TO {worker};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgqueue TO {worker};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgqueue TO {worker};
"""


class Roles:
    def __init__(self, dsn: str, producer: str, worker: str) -> None:
        self.dsn = dsn
        self.producer = producer
        self.worker = worker

    def as_role(self, role: str) -> str:
        return dsn_for(self.dsn, user=role)


@pytest.fixture
def roles(admin_dsn: str, new_database: Any) -> Iterator[Roles]:
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        pgqueue.migrate(conn)
    suffix = uuid.uuid4().hex[:8]
    producer, worker = f"pgqueue_producer_{suffix}", f"pgqueue_worker_{suffix}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for role in (producer, worker):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL(ROLE_SETUP).format(producer=sql.Identifier(producer),
                                                worker=sql.Identifier(worker)))
    try:
        yield Roles(dsn, producer, worker)
    finally:
        name = conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
            for role in (producer, worker):
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
        "worker_id": str(uuid.uuid4()), "key_tasks": [], "key_caps": [], "async_commit": False})
    assert refused(producer, "UPDATE pgqueue.jobs SET state = 'running'")
    assert refused(producer, "DELETE FROM pgqueue.jobs")
    assert scalar(roles.dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s",
                  [secret]) == "queued"


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
        wait_until(lambda: "connection lost" in log.read_text(), timeout=30,
                   message="the worker to report the database unreachable")
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert SECRET not in log.read_text(), log.read_text()
