"""A throwaway PostgreSQL cluster that tests can stop, start and restart.

``throwaway_cluster`` runs the system's ``initdb`` into a temporary folder (as
the ``postgres`` OS user when we are root: PostgreSQL refuses to run as root),
starts it with ``pg_ctl`` on a free port of 127.0.0.1 (its unix socket stays in
the temporary folder), and yields a :class:`Cluster`. At teardown the server is
stopped (killed if it will not stop) and the folder deleted, however the test
ended.

The helpers that find the binaries, pick the OS user and write the settings are
the ones ``pgqueue demo`` uses for its embedded server (``pgqueue.demo.embedded``).
One setting differs: the demo runs with ``synchronous_commit = off``, which lets
a crash of PostgreSQL (``pg_ctl restart -m immediate``) forget the last commits
it already acknowledged. These tests check that committed jobs survive such a
restart, so the cluster runs with ``synchronous_commit = on``. ``fsync = off``
stays: a crash of PostgreSQL (not of the OS) leaves written WAL in the OS cache.

When no ``initdb`` is found the tests that use the fixture are skipped, or fail
under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgqueue.demo import embedded as _embedded
from tests.support import wait_until

__all__ = ["Cluster", "throwaway_cluster"]

READY_TIMEOUT_SECONDS = 60.0
SHUTDOWN_MODES = ("smart", "fast", "immediate")

# Later lines of postgresql.conf win over the embedded server's settings.
_OVERRIDES = {"synchronous_commit": "on"}


class Cluster:
    """A PostgreSQL cluster in a temporary folder, controlled with ``pg_ctl``.

    Attributes:
        dsn: connection string of its ``postgres`` database (TCP, 127.0.0.1).
        folder: the temporary folder (data directory, socket, server log).
        port: its TCP port; the same across restarts.
    """

    def __init__(self, bindir: Path, folder: Path) -> None:
        self._place(bindir, folder)
        self._pg(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-sync"])
        self.port = _embedded._configure(self.data, folder)
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("# pgqueue restart tests\n")
            conf.writelines(f"{key} = '{value}'\n" for key, value in _OVERRIDES.items())
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _place(self, bindir: Path, folder: Path) -> None:
        """Where the cluster lives and who runs its tools (the folder made theirs)."""
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self._run_as = _embedded._run_as()
        self._env = _embedded._child_env(folder)
        if self._run_as.user is not None:
            os.chown(folder, self._run_as.uid, self._run_as.gid)

    # --- control ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the server; return once it accepts connections."""
        self._pg_ctl("start", "-l", str(self.log))
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``pg_ctl stop -m mode``); return once it is down."""
        self._check_mode(mode)
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m mode``; return once it accepts connections again.

        ``fast`` rolls back open transactions and disconnects every client;
        ``immediate`` kills the server like a crash, and the start that follows
        runs crash recovery from the WAL.
        """
        self._check_mode(mode)
        self._pg_ctl("restart", "-m", mode, "-l", str(self.log))
        self.wait_ready()

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        wait_until(self._accepts_connections, timeout=timeout, interval=0.05,
                   message=f"the cluster to accept connections (log: {self.log})")

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    # --- internals --------------------------------------------------------------------

    def _accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self.dsn, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def _check_mode(self, mode: str) -> None:
        if mode not in SHUTDOWN_MODES:
            raise ValueError(f"mode must be one of {SHUTDOWN_MODES}, got {mode!r}")

    def _pg_ctl(self, action: str, *options: str) -> None:
        self._pg(["pg_ctl", action, "-D", str(self.data), "-w",
                  "-t", str(int(READY_TIMEOUT_SECONDS)), *options])

    def _pg(self, args: list[str]) -> None:
        try:
            _embedded._run([str(self.bindir / args[0]), *args[1:]], self._run_as,
                           self.folder, self._env)
        except _embedded._CommandFailed as exc:
            tail = "".join(self.log_text().splitlines(keepends=True)[-10:])
            raise AssertionError(f"{exc}\nserver log tail:\n{tail}") from None

    def _teardown(self) -> None:
        if self.running:
            try:
                self._pg_ctl("stop", "-m", "immediate")
            except AssertionError:
                pass
        _embedded._kill_postmaster(self.data)


@pytest.fixture
def throwaway_cluster() -> Iterator[Cluster]:
    """A fresh, running cluster of its own for one test; stopped and deleted after it."""
    bindir = _embedded.find_system_bindir()
    if bindir is None:
        message = ("no PostgreSQL initdb/pg_ctl found (pg_config --bindir, the usual "
                   "locations, PATH): install the PostgreSQL server package to run the "
                   "database restart tests")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="pgqueue-cluster-"))
    cluster: Cluster | None = None
    try:
        cluster = Cluster(bindir, folder)
        cluster.start()
        yield cluster
    finally:
        if cluster is not None:
            cluster._teardown()
        shutil.rmtree(folder, ignore_errors=True)
