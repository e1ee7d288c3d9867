"""``manage.py migrate`` applies pgqueue's schema through pgqueue's own migrator.

Each test runs ``python -m django`` in a subprocess on a fresh database, with
the test project of ``tests/django_project``.
"""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

import pgqueue
from pgqueue.migrate import check_schema, latest_version
from tests.django_project.harness import ROOT, manage
from tests.support import fetch, scalar

pytest.importorskip("django")


#: The Django migrations of pgqueue's app, in order.
DJANGO_MIGRATIONS = sorted(p.stem for p in (
    ROOT / "pgqueue" / "contrib" / "django" / "migrations").glob("0*.py"))


def pgqueue_versions(dsn: str) -> list[tuple[int, str]]:
    return [(v, str(t)) for v, t in fetch(
        dsn, "SELECT version, applied_at::text FROM pgqueue.migrations ORDER BY version")]


def django_applied(dsn: str, app: str) -> list[str]:
    return [r[0] for r in fetch(dsn, "SELECT name FROM django_migrations WHERE app = %s "
                                     "ORDER BY name", [app])]


def cli_migrate(dsn: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pgqueue", "migrate", "--dsn", dsn], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_django_migrate_applies_the_schema_and_pgqueue_migrate_finds_nothing_to_do(
        empty_dsn: str) -> None:
    done = manage(empty_dsn, "migrate")
    assert done.returncode == 0, done.stdout + done.stderr
    versions = pgqueue_versions(empty_dsn)
    assert [v for v, _ in versions] == list(range(1, latest_version() + 1))
    with psycopg.connect(empty_dsn) as conn:
        check_schema(conn)
    assert django_applied(empty_dsn, "pgqueue") == DJANGO_MIGRATIONS
    assert "nothing to do" in cli_migrate(empty_dsn)
    again = manage(empty_dsn, "migrate")
    assert again.returncode == 0 and "No migrations to apply" in again.stdout, again.stdout
    assert pgqueue_versions(empty_dsn) == versions


def test_pgqueue_migrate_first_then_django_migrate_records_and_changes_nothing(
        empty_dsn: str) -> None:
    cli_migrate(empty_dsn)
    versions = pgqueue_versions(empty_dsn)
    done = manage(empty_dsn, "migrate", "pgqueue")
    assert done.returncode == 0, done.stdout + done.stderr
    assert pgqueue_versions(empty_dsn) == versions
    assert django_applied(empty_dsn, "pgqueue") == DJANGO_MIGRATIONS


def test_unapplying_keeps_the_schema_and_its_jobs(empty_dsn: str) -> None:
    assert manage(empty_dsn, "migrate").returncode == 0
    with psycopg.connect(empty_dsn) as conn:
        job_id = pgqueue.enqueue(conn, "shop.echo", {"payload": {}}, queue="shop")
    done = manage(empty_dsn, "migrate", "pgqueue", "zero")
    assert done.returncode == 0, done.stdout + done.stderr
    assert django_applied(empty_dsn, "pgqueue") == []
    assert scalar(empty_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s", [job_id]) == 1
    assert manage(empty_dsn, "migrate").returncode == 0
    assert django_applied(empty_dsn, "pgqueue") == DJANGO_MIGRATIONS
