"""Shared fixtures: a fresh, migrated database per test session, dropped at the end.

``PGQUEUE_TEST_DSN`` names the server (default: the local one). When it does not
answer, database tests are skipped, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

import pgqueue

DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parent.parent
NOTIFY_CHANNEL = "pgqueue_jobs"

# `tests.schema_dump` and friends import as a package however pytest is started.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def server_dsn() -> str:
    return os.environ.get("PGQUEUE_TEST_DSN", DEFAULT_TEST_DSN)


def dsn_for(dsn: str, **changes: Any) -> str:
    """``dsn`` with some connection parameters replaced (dbname, host, port...)."""
    params = conninfo.conninfo_to_dict(dsn)
    params.update(changes)
    return conninfo.make_conninfo(**params)


@pytest.fixture(scope="session")
def admin_dsn() -> str:
    """DSN of a maintenance database on the test server (for CREATE DATABASE)."""
    dsn = server_dsn()
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        message = (
            f"PostgreSQL is not reachable at PGQUEUE_TEST_DSN={dsn!r}: {exc}. "
            "Start it (for example: pg_ctlcluster --skip-systemctl-redirect 15 main start) "
            "or point PGQUEUE_TEST_DSN at a server."
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return dsn


def create_database(admin: str, prefix: str = "pgqueue_test") -> str:
    """Create an empty database and return its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return dsn_for(admin, dbname=name)


def drop_database(admin: str, dsn: str) -> None:
    name = conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_dsn(admin_dsn: str) -> Iterator[str]:
    """A fresh database with no pgqueue schema, dropped after the test."""
    dsn = create_database(admin_dsn, "pgqueue_empty")
    yield dsn
    drop_database(admin_dsn, dsn)


@pytest.fixture(scope="session")
def dsn(admin_dsn: str) -> Iterator[str]:
    """DSN of this session's own migrated database."""
    dsn = create_database(admin_dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        pgqueue.migrate(conn)
    yield dsn
    drop_database(admin_dsn, dsn)


# The tables every test starts with empty (periodic schedules are not among them;
# finished_job_tags is emptied by finished_jobs' TRUNCATE trigger). Only the ones
# holding rows are truncated: a TRUNCATE costs milliseconds per table even when empty.
_TEST_TABLES = (
    "pgqueue.jobs", "pgqueue.finished_jobs", "pgqueue.failed_counts", "pgqueue.workers",
    "pgqueue.queues", "pgqueue.queue_starts", "pgqueue.job_batches", "pgqueue.leader",
    "pgqueue.queue_retention", "pgqueue.finished_rollups", "pgqueue.queue_samples",
    "pgqueue.queue_sample_rollups",
)
_FILLED_TABLES = " UNION ALL ".join(
    f"SELECT '{table}' WHERE EXISTS (SELECT FROM {table})" for table in _TEST_TABLES
)


@pytest.fixture
def clean_db(dsn: str) -> str:
    """The session database with every pgqueue table emptied."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        filled = [row[0] for row in conn.execute(_FILLED_TABLES)]
        if filled:
            conn.execute("TRUNCATE " + ", ".join(filled))
        conn.execute(
            "UPDATE pgqueue.rollup_state SET rolled_until = NULL, rolled_at = NULL"
            " WHERE rolled_until IS NOT NULL OR rolled_at IS NOT NULL"
        )
    return dsn


@pytest.fixture
def conn(clean_db: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection (not autocommit) to the emptied session database."""
    with psycopg.connect(clean_db) as conn:
        yield conn


@pytest.fixture
def new_database(admin_dsn: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh empty databases; every one is dropped after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(create_database(admin_dsn, "pgqueue_extra"))
        return made[-1]

    yield make
    for dsn in made:
        drop_database(admin_dsn, dsn)


@pytest.fixture
def dashboards(clean_db: str) -> Iterator[Callable[..., int]]:
    """Start dashboards on 127.0.0.1 and free ports (options as ``make_server``'s);
    each call returns the port. Every one is stopped after the test."""
    from contextlib import ExitStack

    from tests.support import serving_dashboard

    with ExitStack() as running:
        yield lambda **options: running.enter_context(serving_dashboard(clean_db, **options))


class Listener:
    """A LISTEN connection on pgqueue's channel that collects payloads.

    :meth:`payloads` proves absence without sleeping: it commits a sentinel
    NOTIFY from another session and returns everything that arrived before it.
    PostgreSQL delivers notifications in commit order, so anything committed
    earlier is in the list.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def payloads(self, timeout: float = 10.0) -> list[str]:
        sentinel = f"sentinel-{uuid.uuid4().hex}"
        with psycopg.connect(self.dsn, autocommit=True) as other:
            other.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, sentinel])
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            for notify in self.conn.notifies(timeout=left, stop_after=1):
                if notify.payload == sentinel:
                    return got
                got.append(notify.payload)
        raise AssertionError(f"the sentinel notification never arrived; got {got}")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def listener(clean_db: str) -> Iterator[Listener]:
    """A :class:`Listener` on the emptied session database, already listening."""
    listening = Listener(clean_db)
    yield listening
    listening.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.01)
