"""Migrations: in Python, from the CLI, as printed SQL, concurrently, and vs sql/schema.sql."""

from __future__ import annotations

import difflib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue._sql import migrations
from pgqueue.migrate import check_schema, latest_version, schema_version
from tests.conftest import ROOT, dsn_for
from tests.schema_dump import dump_schema

SCHEMA_FILE = ROOT / "sql" / "schema.sql"
ALL_VERSIONS = [m.version for m in migrations()]


def migrated(dsn: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return pgqueue.migrate(conn)


def applied_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT version, name, applied_at FROM pgqueue.migrations ORDER BY version"
        ).fetchall()


def assert_same_text(expected: str, actual: str, what: str) -> None:
    if expected != actual:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                fromfile=f"expected {what}", tofile=f"actual {what}",
            )
        )
        pytest.fail(f"{what} differs:\n{diff}", pytrace=False)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgqueue", *args],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )


def test_migrate_applies_all_then_nothing(empty_dsn: str) -> None:
    assert list(range(1, latest_version() + 1)) == ALL_VERSIONS
    assert migrated(empty_dsn) == ALL_VERSIONS
    before = (dump_schema(empty_dsn), applied_rows(empty_dsn))
    assert migrated(empty_dsn) == []
    assert (dump_schema(empty_dsn), applied_rows(empty_dsn)) == before


def test_schema_version_and_check(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        assert schema_version(conn) == 0
        with pytest.raises(pgqueue.SchemaNotReadyError, match="pgqueue migrate"):
            check_schema(conn)
        pgqueue.migrate(conn)
        assert schema_version(conn) == latest_version()
        check_schema(conn)


def test_migrate_refuses_an_open_transaction(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(pgqueue.MigrationError, match="no transaction in progress"):
            pgqueue.migrate(conn)


def test_two_migrators_at_once(empty_dsn: str) -> None:
    barrier = threading.Barrier(2)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(empty_dsn, autocommit=True) as conn:
                barrier.wait(timeout=10)
                results.append(pgqueue.migrate(conn))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(v for r in results for v in r) == ALL_VERSIONS, "each applied once"
    assert [r[0] for r in applied_rows(empty_dsn)] == ALL_VERSIONS
    assert_same_text(SCHEMA_FILE.read_text(), dump_schema(empty_dsn), "schema")


def test_migrations_reproduce_committed_schema_sql(empty_dsn: str) -> None:
    migrated(empty_dsn)
    assert_same_text(
        SCHEMA_FILE.read_text(), dump_schema(empty_dsn),
        "sql/schema.sql (regenerate: python -m tests.schema_dump > sql/schema.sql)",
    )


def test_cli_migrate_prints_what_it_did(empty_dsn: str) -> None:
    first = run_cli("migrate", "--dsn", empty_dsn)
    assert first.returncode == 0, first.stderr
    expected = ", ".join(str(v) for v in ALL_VERSIONS)
    assert first.stdout == (
        f"applied migrations {expected}; schema at version {latest_version()}\n"
    )
    again = run_cli("migrate", "--dsn", empty_dsn)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"schema already at version {latest_version()}; nothing to do\n"


def console_script() -> str:
    beside = Path(sys.executable).with_name("pgqueue")
    found = str(beside) if beside.exists() else shutil.which("pgqueue")
    assert found, "the pgqueue console script is not installed"
    return found


def test_console_script_migrate_from_environment(empty_dsn: str) -> None:
    env = {**os.environ, "PGQUEUE_DSN": empty_dsn}
    result = subprocess.run(
        [console_script(), "migrate"], capture_output=True, text=True, env=env,
        timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("applied migrations 1, ")
    assert [r[0] for r in applied_rows(empty_dsn)] == ALL_VERSIONS


def test_printed_sql_applied_with_psql_gives_the_same_schema(
    empty_dsn: str, new_database: Callable[[], str]
) -> None:
    psql = shutil.which("psql")
    assert psql, "psql is not on PATH"
    printed = run_cli("migrate", "--print-sql")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == pgqueue.migration_sql()
    applied = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_dsn],
        input=printed.stdout, capture_output=True, text=True, timeout=60, check=False,
    )
    assert applied.returncode == 0, applied.stderr
    by_migrate = new_database()
    migrated(by_migrate)
    assert_same_text(dump_schema(by_migrate), dump_schema(empty_dsn), "schema from --print-sql")
    assert [r[:2] for r in applied_rows(empty_dsn)] == [r[:2] for r in applied_rows(by_migrate)]
    assert migrated(empty_dsn) == [], "migrate() recognises a schema applied by hand"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "make_dsn",
    [
        pytest.param(
            lambda dsn: dsn_for(dsn, port=str(free_port()), password="s3cr3t-pw"),
            id="wrong-port-kv",
        ),
        pytest.param(
            lambda dsn: f"postgresql://postgres:s3cr3t-pw@127.0.0.1:{free_port()}/x",
            id="wrong-port-url",
        ),
        pytest.param(
            lambda dsn: "postgresql://postgres:s3cr3t-pw@127.0.0.1:notaport/x",
            id="malformed-port",
        ),
        pytest.param(
            lambda dsn: dsn_for(dsn, dbname="pgqueue_no_such_db", password="s3cr3t-pw"),
            id="missing-database",
        ),
    ],
)
def test_cli_broken_dsn_is_one_clear_line(
    admin_dsn: str, make_dsn: Callable[[str], str]
) -> None:
    result = run_cli("migrate", "--dsn", make_dsn(admin_dsn))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "s3cr3t-pw" not in result.stderr
    assert result.stderr.startswith("pgqueue: error: cannot connect to the database ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_cli_without_a_dsn_is_a_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PGQUEUE_DSN", "DATABASE_URL")}
    result = run_cli("migrate", env=env)
    assert result.returncode == 2
    assert "no database given" in result.stderr
