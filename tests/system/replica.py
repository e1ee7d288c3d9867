"""A throwaway primary and its streaming replica, for the read-replica tests.

``replica_pair`` (module-scoped) starts a :class:`~tests.system.cluster.Cluster`
as the primary (``wal_level = replica``, a ``replication`` line trusting
127.0.0.1 in its own ``pg_hba.conf``), migrates pgqueue into its ``postgres``
database, clones it with ``pg_basebackup -R`` into a second temporary folder
and starts that as a hot standby on another free port. Both are stopped and
deleted after the module. Nothing touches the shared test server.

Without ``initdb`` or ``pg_basebackup`` the tests are skipped, or fail under
``CI=true``, as ``throwaway_cluster`` does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

import pgqueue
from pgqueue.demo import embedded as _embedded
from tests.support import wait_until
from tests.system.cluster import Cluster

__all__ = ["Pair", "Standby", "replica_pair"]

REPLAY_TIMEOUT_SECONDS = 30.0

_PRIMARY_SETTINGS = {"wal_level": "replica", "max_wal_senders": "5", "full_page_writes": "on"}


class Standby(Cluster):
    """A hot standby cloned from ``primary`` with ``pg_basebackup -R``; not started yet."""

    def __init__(self, bindir: Path, folder: Path, primary: Cluster) -> None:
        # Not Cluster.__init__: that runs initdb; the data folder comes from the primary.
        self._place(bindir, folder)
        self._pg(["pg_basebackup", "-D", str(self.data), "-h", "127.0.0.1",
                  "-p", str(primary.port), "-U", "postgres", "-R", "-X", "stream",
                  "-c", "fast", "--no-sync"])
        # The copied postgresql.conf names the primary's port and socket; later lines win.
        self.port = _embedded._configure(self.data, folder)
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@dataclass
class Pair:
    primary: Cluster
    standby: Standby

    def wait_replayed(self, timeout: float = REPLAY_TIMEOUT_SECONDS) -> None:
        """Return once the standby has replayed everything the primary wrote until now."""
        with psycopg.connect(self.primary.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        target = row[0]

        def replayed() -> bool:
            with psycopg.connect(self.standby.dsn, autocommit=True, connect_timeout=5) as conn:
                found = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()
            return bool(found and found[0])

        wait_until(replayed, timeout=timeout, interval=0.02,
                   message=f"the standby to replay the primary's WAL up to {target}")


def _require(bindir: Path | None) -> Path:
    missing = bindir is None or not os.access(bindir / "pg_basebackup", os.X_OK)
    if missing or bindir is None:
        message = ("no PostgreSQL initdb/pg_ctl/pg_basebackup found (pg_config --bindir, the "
                   "usual locations, PATH): install the PostgreSQL server package to run the "
                   "read-replica tests")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return bindir


def _configure_primary(primary: Cluster) -> None:
    with (primary.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("# pgqueue read-replica tests\n")
        conf.writelines(f"{key} = '{value}'\n" for key, value in _PRIMARY_SETTINGS.items())
    with (primary.data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
        hba.write("host replication postgres 127.0.0.1/32 trust\n")


@pytest.fixture(scope="module")
def replica_pair() -> Iterator[Pair]:
    """A running primary with pgqueue's schema and its streaming replica, per module."""
    bindir = _require(_embedded.find_system_bindir())
    folders = [Path(tempfile.mkdtemp(prefix=f"pgqueue-{role}-")) for role in ("primary",
                                                                                "standby")]
    started: list[Cluster] = []
    try:
        primary = Cluster(bindir, folders[0])
        started.append(primary)
        _configure_primary(primary)
        primary.start()
        with psycopg.connect(primary.dsn, autocommit=True) as conn:
            pgqueue.migrate(conn)
        standby = Standby(bindir, folders[1], primary)
        started.append(standby)
        standby.start()
        pair = Pair(primary, standby)
        pair.wait_replayed()
        yield pair
    finally:
        for cluster in reversed(started):
            cluster._teardown()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
