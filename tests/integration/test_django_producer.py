"""Enqueue through Django's own connection, and ``manage.py pgqueue_worker`` runs the jobs.

Django is set up once, in this process, for this module (the test project of
``tests/django_project`` on a database of its own); the worker runs as a real
``python -m django pgqueue_worker`` subprocess.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.conftest import create_database, drop_database
from tests.django_project.harness import ROOT, django_env, setup_in_process
from tests.support import fetch, scalar, wait_until

pytest.importorskip("django")


@pytest.fixture(scope="module")
def django_dsn(admin_dsn: str) -> Iterator[str]:
    """A database migrated by Django's ``migrate``, Django set up on it."""
    dsn = create_database(admin_dsn, "pgqueue_django")
    setup_in_process(dsn)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    yield dsn
    from django.db import connections

    connections.close_all()
    drop_database(admin_dsn, dsn)


@pytest.fixture
def db(django_dsn: str) -> str:
    """The Django database with no job and no order."""
    with psycopg.connect(django_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.finished_jobs, shop_order")
    return django_dsn


def job_ids(dsn: str) -> list[int]:
    """The jobs another session sees: only committed ones."""
    return [r[0] for r in fetch(dsn, "SELECT id FROM pgqueue.all_jobs ORDER BY id")]


def test_enqueue_inside_atomic_commits_with_it(db: str) -> None:
    from django.db import connection, transaction

    from tests.django_project.shop.models import Order
    from tests.django_project.shop.tasks import send_receipt

    with transaction.atomic():
        order = Order.objects.create(email="a@example.com")
        job_id = send_receipt.enqueue(connection, order_id=order.id)
        assert job_ids(db) == []
    assert job_ids(db) == [job_id]
    assert scalar(db, "SELECT count(*) FROM shop_order") == 1


def test_enqueue_inside_atomic_rolls_back_with_it(db: str) -> None:
    from django.db import connection, transaction

    from tests.django_project.shop.models import Order
    from tests.django_project.shop.tasks import send_receipt

    with pytest.raises(RuntimeError), transaction.atomic():
        order = Order.objects.create(email="a@example.com")
        send_receipt.enqueue(connection, order_id=order.id)
        raise RuntimeError("the view failed")
    assert job_ids(db) == []
    assert scalar(db, "SELECT count(*) FROM shop_order") == 0


def test_nested_atomic_rolled_back_inside_a_committed_one(db: str) -> None:
    from django.db import connection, transaction

    with transaction.atomic():
        kept = pgqueue.enqueue(connection, "shop.echo", {"payload": {"kept": True}},
                               queue="shop")
        with pytest.raises(RuntimeError), transaction.atomic():
            pgqueue.enqueue(connection, "shop.echo", {"payload": {"kept": False}},
                            queue="shop")
            raise RuntimeError("inner block failed")
        also = pgqueue.enqueue(connection, "shop.echo", {"payload": {"after": True}},
                               queue="shop")
    assert job_ids(db) == [kept, also]


def test_enqueue_outside_atomic_is_autocommitted(db: str) -> None:
    from django.db import connection

    job_id = pgqueue.enqueue(connection, "shop.echo", {"payload": {}}, queue="shop")
    assert job_ids(db) == [job_id]
    assert not connection.in_atomic_block
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_enqueue_before_the_first_query(db: str) -> None:
    from django.db import connection, connections

    connections.close_all()
    assert connection.connection is None
    job_id = pgqueue.enqueue(connection, "shop.echo", {"payload": {}}, queue="shop")
    assert job_ids(db) == [job_id]


def test_get_job_reads_python_objects_through_djangos_connection(db: str) -> None:
    from django.db import connection

    args = {"payload": {"items": [1, 2.5, "three", None], "nested": {"ok": True}}}
    job_id = pgqueue.enqueue(connection, "shop.echo", args, queue="shop")
    job = pgqueue.get_job(connection, job_id)
    assert job is not None and job.args == args


def start_worker(dsn: str, log: Path, **settings: Any) -> subprocess.Popen[str]:
    env = django_env(dsn, PGQUEUE_DJANGO_SETTINGS=json.dumps(settings))
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "django", "pgqueue_worker", "--concurrency", "2",
             "--poll-interval", "0.5", "--metrics-port", "0", "--shutdown-timeout", "30"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


def stop(worker: subprocess.Popen[str], log: Path) -> None:
    try:
        assert worker.poll() is None, log.read_text()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def finished(dsn: str, *ids: int) -> bool:
    return scalar(dsn, "SELECT count(*) FROM pgqueue.finished_jobs "
                       "WHERE id = ANY(%s) AND state = 'succeeded'", [list(ids)]) == len(ids)


def test_pgqueue_worker_runs_jobs_enqueued_through_djangos_connection(
        db: str, tmp_path: Path) -> None:
    from django.db import connection, transaction

    from tests.django_project.shop.models import Order
    from tests.django_project.shop.tasks import echo, send_receipt

    with transaction.atomic():
        order = Order.objects.create(email="a@example.com")
        receipt = send_receipt.enqueue(connection, order_id=order.id)
        echoed = echo.enqueue(connection, payload={"list": [1, {"two": 2}]})
    log = tmp_path / "worker.log"
    worker = start_worker(db, log)
    try:
        wait_until(lambda: worker.poll() is not None or finished(db, receipt, echoed),
                   timeout=120, message="the worker to finish both jobs")
        order.refresh_from_db()
        assert order.receipt_sent
        assert pgqueue.result(connection, echoed) == {"list": [1, {"two": 2}]}
        outcome = pgqueue.result(connection, receipt)
        assert outcome["order_id"] == order.id
        # The job's Django connection was closed after the job, in the job's thread.
        pid = outcome["django_backend_pid"]
        wait_until(lambda: not scalar(db, "SELECT count(*) FROM pg_stat_activity "
                                          "WHERE pid = %s", [pid]),
                   timeout=60, message="the job's Django connection to close")
    finally:
        stop(worker, log)


def test_pgqueue_worker_takes_the_registries_settings_name(db: str, tmp_path: Path) -> None:
    from django.db import connection

    from tests.django_project.shop.tasks import echo

    job_id = echo.enqueue(connection, payload={"named": True})
    log = tmp_path / "worker.log"
    worker = start_worker(db, log, TASKS=["tests.django_project.shop.tasks:tasks"])
    try:
        wait_until(lambda: worker.poll() is not None or finished(db, job_id),
                   timeout=120, message="the worker to finish the job")
    finally:
        stop(worker, log)


@pytest.mark.parametrize(("settings", "message"), [
    ({"QUEUE": "shop"}, "settings.PGQUEUE has unknown keys ['QUEUE']"),
    ({"TASKS_MODULE": "jobs"}, "no pgqueue tasks found"),
    ({"TASKS": ["tests.django_project.shop.tasks:echo"]}, "a Task, not a pgqueue.Registry"),
    ({"DATABASE": "replica"}, "'replica', which is not in settings.DATABASES"),
])
def test_pgqueue_worker_says_what_is_wrong_with_the_settings(
        db: str, settings: dict[str, Any], message: str) -> None:
    env = django_env(db, PGQUEUE_DJANGO_SETTINGS=json.dumps(settings))
    done = subprocess.run([sys.executable, "-m", "django", "pgqueue_worker"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_pgqueue_worker_offers_the_options_of_pgqueue_worker(db: str) -> None:
    done = subprocess.run([sys.executable, "-m", "django", "pgqueue_worker", "--help"],
                          cwd=ROOT, env=django_env(db), capture_output=True, text=True,
                          timeout=120, check=True)
    for option in ("--queues", "--concurrency", "--processes", "--dsn", "--poll-interval",
                   "--shutdown-timeout", "--log-format", "--metrics-port", "--database"):
        assert option in done.stdout
    assert "--app" not in done.stdout


def test_the_worker_connects_with_djangos_settings_of_the_alias(db: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from pgqueue.contrib.django.conf import database_dsn, get_settings

    params = psycopg.conninfo.conninfo_to_dict(database_dsn("default"))
    assert params["dbname"] == psycopg.conninfo.conninfo_to_dict(db)["dbname"]
    with psycopg.connect(get_settings().worker_dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (params["dbname"],)
    with pytest.raises(ImproperlyConfigured, match=r"'replica' is not in settings\.DATABASES"):
        database_dsn("replica")


def test_the_admin_lists_and_shows_jobs_read_only(db: str) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    job_id = pgqueue.enqueue(connection, "shop.echo", {"payload": {"marker": "abc-123"}},
                             queue="shop", unique_key="admin-test")
    user, _ = User.objects.get_or_create(username="admin", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(user)
    listing = browser.get("/admin/pgqueue/job/", {"state__exact": "queued", "q": "shop.echo"})
    assert listing.status_code == 200 and f"/admin/pgqueue/job/{job_id}/change/" in \
        listing.content.decode()
    shown = browser.get(f"/admin/pgqueue/job/{job_id}/change/")
    assert shown.status_code == 200 and "abc-123" in shown.content.decode()
    assert browser.get("/admin/pgqueue/job/add/").status_code == 403
    assert browser.post(f"/admin/pgqueue/job/{job_id}/delete/").status_code == 403
    assert job_ids(db) == [job_id]


def test_the_apps_migrations_match_their_models(db: str) -> None:
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
