"""`pgqueue worker` start-up as a real process: a stop signal during start-up is a
clean stop, a worker that cannot start says why and exits non-zero (one process
or a supervisor of several), and a DSN that never works is not waited for forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

import pgqueue
from tests.conftest import dsn_for
from tests.support import scalar, wait_until

REPO = Path(__file__).resolve().parents[2]


def start(dsn: str, *options: str, log: Path, env: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pgqueue", "worker", "--dsn", dsn, "--metrics-port", "0",
         *options],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def exit_code(proc: subprocess.Popen[bytes], timeout: float = 120) -> int:
    """Wait for ``proc`` to end by itself; kill it if it does not, and fail."""
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("processes", ["1", "2"])
def test_sigterm_during_startup_is_a_clean_stop(clean_db: str, tmp_path: Path,
                                                processes: str) -> None:
    with psycopg.connect(clean_db) as conn:
        job = pgqueue.enqueue(conn, "slow.noop", {}, queue="slow")
    marker = tmp_path / "importing"
    proc = start(clean_db, "--app", "tests.apps.slow_import_app:tasks",
                 "--processes", processes, log=tmp_path / "worker.log",
                 env={"PGQUEUE_SLOW_IMPORT_MARKER": str(marker)})
    try:
        wait_until(marker.exists, timeout=60, message="the app being imported")
        proc.send_signal(signal.SIGTERM)  # the worker's loop has no handler yet
        marker.unlink()
        assert proc.wait(60) == 0, (tmp_path / "worker.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Stopped before it claimed or even registered.
    assert scalar(clean_db, "SELECT state::text FROM pgqueue.jobs WHERE id = %s", [job]) == \
        "queued"
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.workers") == 0


@pytest.mark.parametrize("processes", ["1", "2"])
def test_unmigrated_database_exits_non_zero_with_the_reason(empty_dsn: str, tmp_path: Path,
                                                            processes: str) -> None:
    log = tmp_path / "worker.log"
    proc = start(empty_dsn, "--app", "tests.apps.worker_app:tasks", "--processes", processes,
                 log=log)
    code = exit_code(proc)  # once forever: the supervisor restarted such children
    output = log.read_text()
    assert code == 1, output
    assert "run 'pgqueue migrate'" in output
    assert output.count("worker process started") <= int(processes)  # no restart loop


def test_dsn_that_never_works_is_reported_and_given_up(admin_dsn: str, tmp_path: Path) -> None:
    missing = dsn_for(admin_dsn, dbname="pgqueue_no_such_database")
    log = tmp_path / "worker.log"
    proc = start(missing, "--app", "tests.apps.worker_app:tasks", "--startup-timeout", "3",
                 log=log)
    code = exit_code(proc)
    output = log.read_text()
    assert code == 1, output
    assert "database connection lost" not in output  # it never had one
    # Said what is wrong, more than once, then gave up saying so.
    assert output.count("cannot connect to the database; retrying") >= 2, output
    assert output.count('database "pgqueue_no_such_database" does not exist') >= 3, output
    assert "could not connect to the database within 3 s" in output


def test_startup_timeout_is_validated() -> None:
    from pgqueue.worker.config import ConfigError, WorkerConfig

    with pytest.raises(ConfigError, match="startup_timeout"):
        WorkerConfig(startup_timeout=0)
