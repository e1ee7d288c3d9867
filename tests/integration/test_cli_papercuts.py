"""The command line as a newcomer meets it: a missing schema, prune's units, enqueue's
queue, and one JSON document per --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import Result

import pgqueue
from pgqueue._sql import query
from pgqueue.cli import main
from tests.support import cli_runner, running_worker, scalar

REPO = Path(__file__).resolve().parents[2]
APP = "tests.apps.papercuts_app:tasks"
MIGRATE_HINT = "run 'pgqueue migrate'"

# Every command that reads or writes the database, with what it needs to run.
DATABASE_COMMANDS = [
    ["status"], ["status", "--json"],
    ["jobs", "list"], ["jobs", "list", "--json"], ["jobs", "show", "1"],
    ["retry", "1"], ["retry", "--failed"],
    ["prune", "--older-than", "7d"], ["prune", "--older-than", "7d", "--dry-run"],
    ["workers"], ["workers", "--json"],
    ["enqueue", "send_receipt"], ["enqueue", "send_receipt", "--app", APP],
    ["cancel", "1"],
    ["queue", "pause", "email"], ["queue", "resume", "email"], ["queue", "limit", "email"],
    ["periodic", "list"], ["periodic", "list", "--json"],
    ["batch", "list"], ["batch", "status", "1"], ["batch", "export", "1", "--format", "csv"],
]


def cli(dsn: str, *args: str) -> Result:
    return cli_runner().invoke(main, [*args, "--dsn", dsn])


def run_pgqueue(*args: str, env: dict[str, str] | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgqueue", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def finished_jobs(dsn: str, ages: dict[str, float]) -> list[int]:
    """One finished job per state in ``ages``, finished that many seconds ago."""
    ids = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for state, age in ages.items():
            job_id = pgqueue.enqueue(conn, "old", queue="history")
            conn.execute(
                "WITH done AS (DELETE FROM pgqueue.jobs WHERE id = %(id)s RETURNING *) "
                "INSERT INTO pgqueue.finished_jobs (id, queue, task, args, priority, state, "
                "attempt, max_attempts, run_at, created_at, started_at, finished_at, errors) "
                "SELECT id, queue, task, args, priority, %(state)s::pgqueue.job_state, 1, "
                "max_attempts, run_at, created_at, now(), now() - %(age)s * interval '1 second', "
                "'[]' "
                "FROM done", {"id": job_id, "state": state.split(":")[0], "age": age})
            ids.append(job_id)
    return ids


# --- a database without the schema -----------------------------------------------------


def test_every_command_on_an_unmigrated_database_says_run_migrate(empty_dsn: str,
                                                                  tmp_path: Path) -> None:
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("order_id\n1\n")
    wrong = []
    for args in [*DATABASE_COMMANDS, ["batch", "create", "t", "--from-csv", str(csv_file)]]:
        result = cli(empty_dsn, *args)
        if not (isinstance(result.exception, SystemExit) and result.exit_code == 1
                and MIGRATE_HINT in result.output and "Traceback" not in result.output):
            wrong.append((args, result.exit_code, repr(result.exception), result.output[-300:]))
    assert not wrong, "\n".join(map(str, wrong))


def test_worker_on_an_unmigrated_database_says_run_migrate(empty_dsn: str) -> None:
    done = run_pgqueue("worker", "--app", APP, "--dsn", empty_dsn, "--metrics-port", "0")
    assert done.returncode != 0
    assert MIGRATE_HINT in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_other_database_errors_are_not_called_a_missing_schema(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        pgqueue.migrate(conn)
        conn.execute("DROP VIEW pgqueue.queue_stats")
        conn.execute("CREATE VIEW pgqueue.queue_stats AS SELECT 1 / 0 AS queue")
    result = cli(empty_dsn, "status")
    assert isinstance(result.exception, psycopg.errors.DivisionByZero)


# --- prune: units and --dry-run ----------------------------------------------------------


@pytest.mark.parametrize("bare", ["7", "604800", "0.5"])
def test_prune_refuses_a_bare_number_and_shows_the_syntax(clean_db: str, bare: str) -> None:
    finished_jobs(clean_db, {"succeeded": 30})
    result = cli(clean_db, "prune", "--older-than", bare)
    assert result.exit_code == 2
    assert "--older-than" in result.output
    assert all(example in result.output for example in ("45s", "30m", "12h", "7d"))
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs") == 1


@pytest.mark.parametrize(("age", "deleted"), [("45s", 2), ("30m", 1), ("12h", 0),
                                              ("7d", 0), ("600s", 1)])
def test_prune_ages_take_their_unit(clean_db: str, age: str, deleted: int) -> None:
    finished_jobs(clean_db, {"succeeded": 60, "failed": 3600})
    result = cli(clean_db, "prune", "--older-than", age, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"deleted": deleted}


def test_prune_dry_run_counts_per_state_and_deletes_nothing(clean_db: str) -> None:
    ages = {"succeeded": 10 * 86400, "succeeded:2": 9 * 86400, "failed": 8 * 86400,
            "cancelled": 3600}
    finished_jobs(clean_db, ages)
    result = cli(clean_db, "prune", "--older-than", "7d", "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("would delete 3 finished jobs older than 7d")
    assert [line.split() for line in lines[1:]] == [["succeeded", "2"], ["failed", "1"]]
    result = cli(clean_db, "prune", "--older-than", "30m", "--dry-run", "--json")
    assert json.loads(result.stdout) == {
        "dry_run": True, "older_than_seconds": 1800.0, "would_delete": 4,
        "by_state": {"cancelled": 1, "failed": 1, "succeeded": 2}}
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs") == 4
    assert json.loads(cli(clean_db, "prune", "--older-than", "7d", "--json").stdout) == \
        {"deleted": 3}


# --- enqueue: the task's declared options ------------------------------------------------


def live_job(dsn: str, job_id: int) -> tuple[Any, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT queue, priority, max_attempts FROM pgqueue.jobs "
                           "WHERE id = %s", [job_id]).fetchone()
    assert row is not None
    return tuple(row)


def test_enqueue_with_app_uses_the_tasks_declared_options(clean_db: str) -> None:
    result = cli(clean_db, "enqueue", "send_receipt", "--args", '{"order_id": 42}',
                 "--app", APP)
    assert result.exit_code == 0, result.output
    assert live_job(clean_db, int(result.stdout)) == ("email", 7, 2)
    result = cli(clean_db, "enqueue", "send_receipt", "--app", APP, "--queue", "urgent",
                 "--priority", "0", "--max-attempts", "9")
    assert live_job(clean_db, int(result.stdout)) == ("urgent", 0, 9)


def test_enqueue_with_app_refuses_a_task_the_registry_lacks(clean_db: str) -> None:
    result = cli(clean_db, "enqueue", "send_reciept", "--app", APP)
    assert result.exit_code == 2
    assert "send_reciept" in result.output and "send_receipt" in result.output
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_enqueue_without_app_warns_when_no_worker_takes_the_task(clean_db: str) -> None:
    from tests.apps.papercuts_app import tasks

    done = run_pgqueue("enqueue", "send_receipt", "--dsn", clean_db)
    assert done.returncode == 0, done.stderr
    assert live_job(clean_db, int(done.stdout))[0] == "default"
    assert "warning" in done.stderr and "'default'" in done.stderr and "--app" in done.stderr
    with running_worker(clean_db, tasks, queues=["email"]):
        done = run_pgqueue("enqueue", "send_receipt", "--dsn", clean_db)
        assert "queue 'default'; running workers take it from email" in done.stderr
        done = run_pgqueue("enqueue", "send_receipt", "--queue", "email", "--dsn", clean_db)
        assert (done.returncode, done.stderr) == (0, "")
        done = run_pgqueue("enqueue", "send_receipt", "--app", APP, "--dsn", clean_db)
        assert (done.returncode, done.stderr) == (0, "")


# --- --json: one document everywhere -----------------------------------------------------


def json_of(dsn: str, *args: str) -> Any:
    result = cli(dsn, *args, "--json")
    assert result.exit_code in (0, 3), result.output
    return json.loads(result.stdout)  # the whole output is one JSON document


def test_every_json_option_prints_one_document_also_when_empty(clean_db: str) -> None:
    assert json_of(clean_db, "status") == {"queues": []}
    assert json_of(clean_db, "jobs", "list") == {"jobs": [], "next_cursor": None}
    assert json_of(clean_db, "workers") == {"workers": []}
    assert json_of(clean_db, "batch", "list") == {"batches": []}
    assert json_of(clean_db, "periodic", "list") == {"schedules": []}
    assert json_of(clean_db, "retry", "--failed") == {"queue": None, "retried": 0}
    assert json_of(clean_db, "retry", "999999") == {
        "jobs": [{"id": 999999, "outcome": "not_found"}]}
    assert json_of(clean_db, "prune", "--older-than", "1d") == {"deleted": 0}
    assert json_of(clean_db, "queue", "limit", "nothing-yet")["known"] is False


def test_json_of_commands_with_rows(clean_db: str, tmp_path: Path) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        job_id = pgqueue.enqueue(conn, "send_receipt", {"order_id": 1}, queue="email")
    assert [q["queue"] for q in json_of(clean_db, "status")["queues"]] == ["email"]
    assert [j["id"] for j in json_of(clean_db, "jobs", "list")["jobs"]] == [job_id]
    assert json_of(clean_db, "jobs", "show", str(job_id))["id"] == job_id
    assert json_of(clean_db, "queue", "limit", "email")["known"] is True
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("order_id\n1\n2\n")
    created = json_of(clean_db, "batch", "create", "send_receipt", "--from-csv", str(csv_file))
    assert created["jobs"] == 2
    assert json_of(clean_db, "batch", "status", str(created["batch_id"]))["total"] == 2
    assert len(json_of(clean_db, "batch", "list")["batches"]) == 1


def test_periodic_list_json_is_one_document_with_every_schedule(
        new_database: Callable[[], str]) -> None:
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        pgqueue.migrate(conn)
        for name in ("reports.daily", "tick.every_minute"):
            conn.execute(query("periodic_sync"), {
                "name": name, "cron": "* * * * *", "task": name, "queue": "ticks",
                "args": "{}", "on_missed": "skip",
                "next_tick": datetime.now(UTC) + timedelta(minutes=1)})
    schedules = json_of(dsn, "periodic", "list")["schedules"]
    assert [s["name"] for s in schedules] == ["reports.daily", "tick.every_minute"]
    assert datetime.fromisoformat(schedules[0]["next_tick"]).tzinfo is not None
