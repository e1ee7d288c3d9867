"""Fixtures of the system tests: a real PgBouncer in front of the test server.

``pgbouncer_transaction`` and ``pgbouncer_session`` start one PgBouncer per test
session (``pool_mode`` transaction, session) and stop it at the end;
``pooled_dsn`` and ``session_pooled_dsn`` are the emptied session database
through them. Without the ``pgbouncer`` binary these tests are skipped, except
under ``CI=true`` where they fail.

``prometheus_binary`` and ``promtool_binary``: Debian's Prometheus and its tool,
and ``pgbench_binary`` (PostgreSQL's own, for the ceiling benchmark), skipped
(failing under ``CI=true``) the same way when missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.system.pgbouncer import PgBouncer, find_pgbouncer, pgbouncer
from tests.system.prometheus import find_binary


def _required(binary: str | None, message: str) -> str:
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="session")
def pgbouncer_binary() -> str:
    """The pgbouncer binary's path; skips (fails under ``CI=true``) without it."""
    return _required(find_pgbouncer(), "pgbouncer is not installed (apt-get install pgbouncer)")


@pytest.fixture(scope="session")
def pgbench_binary() -> str:
    """pgbench's path; skips (fails under ``CI=true``) without it."""
    from benchmarks.ceiling import pgbench_binary as find_pgbench  # as the benchmark finds it

    return _required(find_pgbench(), "pgbench is not installed (it comes with PostgreSQL)")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Prometheus's path; skips (fails under ``CI=true``) without it."""
    return _required(find_binary("prometheus"),
                     "prometheus is not installed (apt-get install prometheus)")


@pytest.fixture(scope="session")
def promtool_binary() -> str:
    """promtool's path; skips (fails under ``CI=true``) without it."""
    return _required(find_binary("promtool"),
                     "promtool is not installed (apt-get install prometheus)")


@pytest.fixture(scope="session")
def pgbouncer_transaction(admin_dsn: str, pgbouncer_binary: str) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode in front of the test server."""
    with pgbouncer(admin_dsn, pool_mode="transaction") as bouncer:
        yield bouncer


@pytest.fixture(scope="session")
def pgbouncer_session(admin_dsn: str, pgbouncer_binary: str) -> Iterator[PgBouncer]:
    """A PgBouncer in session mode in front of the test server."""
    with pgbouncer(admin_dsn, pool_mode="session") as bouncer:
        yield bouncer


@pytest.fixture
def pooled_dsn(clean_db: str, pgbouncer_transaction: PgBouncer) -> str:
    """The emptied session database through the transaction-mode PgBouncer."""
    return pgbouncer_transaction.dsn(clean_db)


@pytest.fixture
def session_pooled_dsn(clean_db: str, pgbouncer_session: PgBouncer) -> str:
    """The emptied session database through the session-mode PgBouncer."""
    return pgbouncer_session.dsn(clean_db)
