"""Workers through a real PgBouncer in transaction mode (``pooler="transaction"``):
in threads draining 5,000 jobs with retries, and ``pgqueue worker --pooler
transaction`` as a process, with and without a direct ``--listen-dsn``; and a
session-mode smoke.

Jobs are enqueued on direct connections here: these tests are about the
worker's own sessions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from tests.apps import pooler_app
from tests.support import RunningWorker, fetch, listeners_ready, running_worker, scalar, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
JOBS = 5_000
RETRY_EVERY = 10  # every tenth job asks for one retry
FAST = ["--heartbeat-interval", "0.3", "--stall-timeout", "3"]


def _enqueue(dsn: str, first: int, count: int) -> None:
    specs = [{"task": "pool.work_async" if n % 2 else "pool.work", "queue": "pool",
              "args": {"n": n, "retry": n % RETRY_EVERY == 0}}
             for n in range(first, first + count)]
    with psycopg.connect(dsn) as conn:
        pgqueue.enqueue_many(conn, specs)


def _finished(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM pgqueue.finished_jobs"))


def _check_final_states(dsn: str, total: int) -> None:
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0
    rows = fetch(dsn, "SELECT state::text, attempt, (args->>'retry')::bool, "
                      "result = args->'n' FROM pgqueue.finished_jobs")
    assert len(rows) == total
    for state, attempt, retry, right_result in rows:
        assert state == "succeeded" and right_result, (state, attempt, retry)
        assert attempt == (2 if retry else 1), (attempt, retry)


def _no_errors(worker: RunningWorker) -> None:
    """No statement refused, and no connection lost but to the end of the run (a
    prepared statement missing or already there on the server session met, or a
    deadlock, would show here)."""
    assert not worker.of(events.ServiceError), worker.of(events.ServiceError)
    lost = [e for e in worker.of(events.ConnectionLost) if "connection is closed" not in e.error]
    assert not lost, lost


def test_two_workers_drain_5000_jobs_with_retries_through_transaction_mode(
        pooled_dsn: str, clean_db: str) -> None:
    """One worker polls (no LISTEN), the other LISTENs on a direct DSN; both claim
    and write outcomes through the pooler. Every job runs, no attempt of a job
    overlaps another of it, and each ends as it should."""
    pooler_app.ATTEMPTS.clear()
    pooler_app.INFLIGHT.peak.clear()
    _enqueue(clean_db, 0, JOBS // 2)
    options: dict[str, Any] = {"pooler": "transaction", "concurrency": 10,
                               "poll_interval": None}
    with running_worker(pooled_dsn, pooler_app.tasks, **options) as polling, \
            running_worker(pooled_dsn, pooler_app.tasks, listen_dsn=clean_db,
                           **options) as listening:
        for first in range(JOBS // 2, JOBS, JOBS // 10):
            _enqueue(clean_db, first, JOBS // 10)
        wait_until(lambda: _finished(clean_db) == JOBS, timeout=300,
                   message=f"{JOBS} jobs finished")
        _no_errors(polling)
        _no_errors(listening)
        assert polling.finished() and listening.finished()
    _check_final_states(clean_db, JOBS)
    retried = {n for n in range(JOBS) if n % RETRY_EVERY == 0}
    assert sorted(pooler_app.ATTEMPTS.values()).count(2) == len(retried)
    assert sum(pooler_app.ATTEMPTS.values()) == JOBS + len(retried)
    assert set(pooler_app.INFLIGHT.peak.values()) == {1}


def test_pooled_worker_without_listen_dsn_opens_no_listener(pooled_dsn: str,
                                                            clean_db: str) -> None:
    with running_worker(pooled_dsn, pooler_app.tasks, pooler="transaction",
                        poll_interval=None) as worker:
        assert worker.worker.config.poll_interval == 0.5
        _enqueue(clean_db, 0, 20)
        wait_until(lambda: _finished(clean_db) == 20, message="20 jobs finished")
        assert scalar(clean_db, "SELECT count(*) FROM pg_stat_activity "
                                "WHERE datname = current_database() "
                                "AND application_name = 'pgqueue-listener'") == 0
        _no_errors(worker)
    _check_final_states(clean_db, 20)


class WorkerProcess:
    def __init__(self, dsn: str, *extra: str, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "worker", "--app", "tests.apps.pooler_app:tasks",
             "--dsn", dsn, *FAST, *extra],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"),
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PGQUEUE_METRICS_PORT": "0"})

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    procs: list[WorkerProcess] = []

    def start(dsn: str, *extra: str) -> WorkerProcess:
        procs.append(WorkerProcess(dsn, *extra, log=tmp_path / f"worker{len(procs)}.log"))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


def test_cli_worker_with_pooler_transaction_polls(pooled_dsn: str, clean_db: str,
                                                  spawn: Any) -> None:
    _enqueue(clean_db, 0, 300)
    worker = spawn(pooled_dsn, "--pooler", "transaction", "--processes", "2")
    wait_until(lambda: _finished(clean_db) == 300, timeout=120, message="300 jobs finished")
    _enqueue(clean_db, 300, 50)  # found by the poll: nothing LISTENs
    wait_until(lambda: _finished(clean_db) == 350, timeout=60, message="350 jobs finished")
    assert worker.stop() == 0
    _check_final_states(clean_db, 350)
    log = worker.log.read_text()
    assert "prepared statement" not in log and "Traceback" not in log, log[-3000:]


def test_cli_worker_with_listen_dsn_wakes_on_notify(pooled_dsn: str, clean_db: str,
                                                    spawn: Any) -> None:
    """A 60 s poll: only the NOTIFY on the direct listen DSN can wake it in time."""
    worker = spawn(pooled_dsn, "--pooler", "transaction", "--listen-dsn", clean_db,
                   "--poll-interval", "60")
    wait_until(lambda: listeners_ready(clean_db), message="the worker's LISTEN")
    wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.workers") == 1,
               message="the worker registered")
    _enqueue(clean_db, 0, 30)
    wait_until(lambda: _finished(clean_db) == 30, timeout=40, message="30 jobs finished")
    assert worker.stop() == 0
    _check_final_states(clean_db, 30)
    assert "Traceback" not in worker.log.read_text()


def test_worker_through_session_mode(session_pooled_dsn: str, clean_db: str,
                                     spawn: Any) -> None:
    """Session mode keeps a client on one server session: the default mode works,
    LISTEN through the pooler included."""
    worker = spawn(session_pooled_dsn, "--pooler", "session", "--poll-interval", "60")
    wait_until(lambda: listeners_ready(clean_db), message="the worker's LISTEN")
    wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.workers") == 1,
               message="the worker registered")
    _enqueue(clean_db, 0, 100)
    wait_until(lambda: _finished(clean_db) == 100, timeout=40, message="100 jobs finished")
    assert worker.stop() == 0
    _check_final_states(clean_db, 100)
    assert "Traceback" not in worker.log.read_text()


def test_a_worker_left_in_direct_mode_behind_the_pooler_says_what_to_set(
        pooled_dsn: str, clean_db: str) -> None:
    """Without --pooler, psycopg prepares the worker's statements; behind a
    transaction pooler they clash, and the lost connection names the fix."""
    _enqueue(clean_db, 0, 2_000)
    with running_worker(pooled_dsn, pooler_app.tasks, concurrency=10) as worker:
        wait_until(lambda: any("--pooler transaction" in e.error
                               for e in worker.of(events.ConnectionLost)),
                   timeout=120, message="a lost connection that names --pooler transaction")
