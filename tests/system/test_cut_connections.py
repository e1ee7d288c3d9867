"""Cut connections: the worker's traffic is paused or reset under it.

The listener is cut on its own by terminating its backend
(``pg_terminate_backend``; every session of a worker shares one DSN, so a proxy
cannot single it out). The other tests put a TCP proxy of our own
(``tests/system/proxy.py``) between a `pgqueue worker` process and PostgreSQL
and pause or reset all of its traffic.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

import pgqueue
from pgqueue import events
from tests.apps import worker_app
from tests.conftest import dsn_for
from tests.support import fetch, running_worker, scalar, wait_until
from tests.system.chaos import Ledger, chaos_worker, enqueue_work, runs, succeeded, witness
from tests.system.proxy import TcpProxy, tcp_proxy
from tests.system.test_worker_process import FAST, WorkerProcess

__all__ = ["witness"]

LISTENERS = ("SELECT pid FROM pg_stat_activity WHERE application_name = 'pgqueue-listener' "
             "AND datname = current_database()")


@pytest.fixture
def proxy(clean_db: str) -> Iterator[TcpProxy]:
    params = conninfo.conninfo_to_dict(clean_db)
    with tcp_proxy(str(params.get("host", "127.0.0.1")), int(params.get("port", 5432))) as p:
        yield p


def through(dsn: str, proxy: TcpProxy) -> str:
    return dsn_for(dsn, host="127.0.0.1", port=str(proxy.port))


def enqueue(dsn: str, task: str, args: dict[str, Any]) -> int:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue(conn, task, args, queue="app")


def finished(dsn: str, job_id: int) -> Any:
    rows = fetch(dsn, "SELECT state::text, attempt, result FROM pgqueue.finished_jobs "
                      "WHERE id = %s", [job_id])
    return rows[0] if rows else None


def terminate_listeners(dsn: str) -> int:
    return len(fetch(dsn, f"SELECT pg_terminate_backend(pid) FROM ({LISTENERS}) l"))


def listener_events(w: Any) -> list[str]:
    return [e.name for e in list(w.events)
            if isinstance(e, events.ConnectionLost | events.ConnectionRestored)
            and e.service == "listener"]


# --- the listener alone -------------------------------------------------------------------


def test_listener_cut_relistens_and_notifications_wake_the_worker_again(clean_db: str) -> None:
    # A poll interval far longer than the test: only a notification can wake it in time.
    with running_worker(clean_db, worker_app.tasks, poll_interval=120.0) as w:
        wait_until(lambda: fetch(clean_db, LISTENERS), message="the listener's session")
        first = enqueue(clean_db, "app.hello", {"name": "before"})
        wait_until(lambda: finished(clean_db, first), timeout=60, message="the first job")
        assert terminate_listeners(clean_db) == 1
        wait_until(lambda: listener_events(w)[-2:] == ["connection_lost",
                                                       "connection_restored"],
                   timeout=60, message="the listener to reconnect and LISTEN again")
        after = enqueue(clean_db, "app.hello", {"name": "after"})
        wait_until(lambda: finished(clean_db, after), timeout=60,
                   message="a job enqueued after the re-listen, woken by NOTIFY")
        assert not w.of(events.ServiceError)


def test_worker_keeps_running_jobs_while_its_listener_cannot_connect(clean_db: str) -> None:
    stop = threading.Event()

    def keep_cutting() -> None:
        with psycopg.connect(clean_db, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute(f"SELECT pg_terminate_backend(pid) FROM ({LISTENERS}) l")
                stop.wait(0.01)

    with running_worker(clean_db, worker_app.tasks, poll_interval=1.0) as w:
        wait_until(lambda: fetch(clean_db, LISTENERS), message="the listener's session")
        cutter = threading.Thread(target=keep_cutting, daemon=True)
        cutter.start()
        try:
            wait_until(lambda: "connection_lost" in listener_events(w), timeout=60)
            ids = [enqueue(clean_db, "app.hello", {"name": f"n{i}"}) for i in range(5)]
            # No notification reaches it: polling (and the listener's gap wake-ups) must.
            wait_until(lambda: all(finished(clean_db, i) for i in ids), timeout=60,
                       message="jobs run while the listener is cut")
        finally:
            stop.set()
            cutter.join(5)
        wait_until(lambda: listener_events(w)[-1:] == ["connection_restored"], timeout=60,
                   message="the listener back once it may connect")


# --- a paused worker is fenced ---------------------------------------------------------------


def test_paused_worker_is_reclaimed_and_its_late_outcome_changes_nothing(
        clean_db: str, proxy: TcpProxy, tmp_path: Path) -> None:
    job = enqueue(clean_db, "app.slow_every", {"seconds": 1.0})
    cut = WorkerProcess(through(clean_db, proxy), *FAST, log=tmp_path / "cut.log")
    try:
        wait_until(lambda: fetch(clean_db, "SELECT 1 FROM pgqueue.running_jobs WHERE id = %s "
                                           "AND worker_pid = %s", [job, cut.proc.pid]),
                   message="the job running under the proxied worker")
        proxy.pause()  # heartbeats stop reaching the database; the handler goes on
        with running_worker(clean_db, worker_app.tasks) as rescuer:
            wait_until(lambda: finished(clean_db, job), timeout=30,
                       message="the job reclaimed and finished by the rescuer")
            assert rescuer.of(events.JobsReclaimed)
        assert finished(clean_db, job) == ("succeeded", 2, {"pid": os.getpid(), "attempt": 2})
        proxy.resume()  # the cut worker's attempt-1 outcome now reaches the database
        wait_until(lambda: "lost the job" in cut.output, timeout=30,
                   message="the stale worker to report its outcome discarded")
        assert finished(clean_db, job) == ("succeeded", 2, {"pid": os.getpid(), "attempt": 2})
        assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0
        # It recovers on its own and works again.
        again = enqueue(clean_db, "app.hello", {"name": "again"})
        wait_until(lambda: finished(clean_db, again), timeout=30)
        cut.signal(signal.SIGTERM)
        assert cut.wait(30) == 0, cut.output
    finally:
        proxy.resume()
        cut.kill()


# --- every connection reset mid-batch --------------------------------------------------------


def test_resetting_every_connection_mid_batch_loses_nothing(
        witness: str, proxy: TcpProxy, tmp_path: Path) -> None:
    dsn = witness
    total = 1500
    ids = enqueue_work(dsn, total, max_ms=20)
    worker = chaos_worker(through(dsn, proxy), tmp_path / "worker.log", "--concurrency", "8",
                          "--poll-interval", "1", "--heartbeat-interval", "0.3",
                          "--stall-timeout", "1.5")
    try:
        for due in (total // 5, total // 2):
            wait_until(lambda: runs(dsn) >= due, timeout=60,  # noqa: B023
                       message=f"{due} runs before a reset")
            assert succeeded(dsn) < total, "drained before the reset: make the jobs slower"
            proxy.reset_all()
        wait_until(lambda: succeeded(dsn) == total, timeout=90,
                   message="every job to succeed after the resets")
        assert worker.proc.poll() is None, worker.output
        log = worker.output
        assert "database connection lost" in log and "database connection restored" in log
        assert "Traceback" not in log, log
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.output
    finally:
        worker.kill()
    ledger = Ledger.of(dsn, ids)
    print(f"\n[reset all connections x{proxy.resets}] {ledger.as_dict()} "
          f"outcomes_discarded={log.count('outcome discarded')}")
    assert ledger.succeeded == total and ledger.lost == 0 and ledger.live == 0, ledger
    assert ledger.unexplained == 0 and ledger.same_attempt_twice == 0, ledger
