"""The database restarts under a running worker: nothing committed is lost.

Each test gets a cluster of its own (``tests/system/cluster.py``) and restarts
it for real with ``pg_ctl restart -m fast`` (clients disconnected, open
transactions rolled back) or ``-m immediate`` (PostgreSQL killed; crash
recovery on start). The worker must notice, say so, reconnect by itself, and
finish every job; the test never restarts the worker.

Figures worth a look are printed (run with ``-s``): jobs, restarts, runs, jobs
run more than once (at-least-once: a claim or an outcome whose answer was lost
in the restart), outcomes discarded by fencing, lost = 0.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from tests.support import FAST, RunningWorker, running_worker, wait_until
from tests.system.cluster import Cluster, throwaway_cluster

__all__ = ["throwaway_cluster"]  # the fixture, imported so pytest finds it here

ROOT = Path(__file__).resolve().parent.parent.parent
APP = "tests.apps.restart_app:tasks"
TASK = "restart.work"
QUEUE = "restart"
TOTAL = 3000
FINISH_TIMEOUT = 60.0
WORKER_OPTIONS = {"--concurrency": "10", "--poll-interval": str(FAST["poll_interval"]),
                  "--heartbeat-interval": str(FAST["heartbeat_interval"]),
                  "--stall-timeout": str(FAST["stall_timeout"]),
                  "--shutdown-timeout": str(FAST["shutdown_timeout"]),
                  # A server restarted on a loaded machine may take a while to answer.
                  "--startup-timeout": "300"}


# --- helpers ------------------------------------------------------------------------


def migrated(cluster: Cluster) -> str:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        pgqueue.migrate(conn)
    return cluster.dsn


def enqueue_jobs(dsn: str, total: int) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue_many(
            conn, [{"task": TASK, "queue": QUEUE, "args": {"n": i}} for i in range(total)])


def try_scalar(dsn: str, sql: str) -> Any:
    """The query's first value, or None while the database does not answer."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute(sql).fetchone()
    except psycopg.OperationalError:
        return None
    return None if row is None else row[0]


def succeeded_count(dsn: str) -> int:
    value = try_scalar(dsn, "SELECT count(*) FROM pgqueue.finished_jobs "
                            "WHERE state = 'succeeded'")
    return -1 if value is None else int(value)


def wait_all_succeeded(dsn: str, total: int) -> None:
    wait_until(lambda: succeeded_count(dsn) == total, timeout=FINISH_TIMEOUT,
               message=f"all {total} jobs to succeed after the restarts")


def restart_mid_run(cluster: Cluster, modes: tuple[str, ...], runs: Callable[[], int],
                    total: int) -> None:
    """Restart the cluster once per mode, each time after another share of runs."""
    step = total // (len(modes) + 3)
    for i, mode in enumerate(modes, start=1):
        due = i * step
        wait_until(lambda: runs() >= due, timeout=FINISH_TIMEOUT,  # noqa: B023
                   message=f"{due} runs before restart {i}")
        assert try_scalar(cluster.dsn, "SELECT count(*) FROM pgqueue.jobs"), \
            "the run ended before the restart: make the jobs slower"
        cluster.restart(mode)


@dataclass
class Accounting:
    """Where every enqueued job ended up."""

    finished: dict[str, int]
    live: int
    max_attempt: int

    @classmethod
    def of(cls, dsn: str) -> Accounting:
        with psycopg.connect(dsn, autocommit=True) as conn:
            finished: dict[str, int] = dict(conn.execute(
                "SELECT state::text, count(*) FROM pgqueue.finished_jobs GROUP BY 1").fetchall())
            live = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
            attempt = conn.execute(
                "SELECT coalesce(max(attempt), 0) FROM pgqueue.finished_jobs").fetchone()
        assert live is not None and attempt is not None
        return cls(finished, int(live[0]), int(attempt[0]))


def check_nothing_lost(dsn: str, ids: list[int], ran: collections.Counter[int],
                       label: str, lost_outcomes: int | str = "n/a") -> None:
    acc = Accounting.of(dsn)
    assert sum(acc.finished.values()) + acc.live == len(ids), acc
    assert acc.finished == {"succeeded": len(ids)}, acc
    assert acc.live == 0, f"{acc.live} jobs left live (queued or running)"
    assert set(ids) <= set(ran), f"never ran: {sorted(set(ids) - set(ran))[:20]}"
    twice = sum(1 for n in ran.values() if n > 1)
    print(f"\n[{label}] jobs={len(ids)} runs={sum(ran.values())} run_more_than_once={twice} "
          f"max_attempt={acc.max_attempt} outcomes_discarded_by_fencing={lost_outcomes} lost=0")


# --- a worker subprocess --------------------------------------------------------------


@dataclass
class WorkerProcess:
    """``pgqueue worker`` on the restart app, with its log and runs in files."""

    dsn: str
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    runs_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.folder / "worker.log"
        self.runs_path = self.folder / "runs.txt"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGQUEUE_")}
        env["PGQUEUE_TEST_RUNS_FILE"] = str(self.runs_path)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        args = [sys.executable, "-m", "pgqueue", "worker", "--app", APP, "--dsn", self.dsn]
        for option, value in WORKER_OPTIONS.items():
            args += [option, value]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def ran(self) -> collections.Counter[int]:
        try:
            text = self.runs_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return collections.Counter()
        # A line being written right now may be incomplete: count whole lines only.
        lines = text.split("\n")[:-1]
        return collections.Counter(int(line) for line in lines)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM, wait for a graceful exit; return the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def worker_process(throwaway_cluster: Cluster, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(throwaway_cluster.dsn, tmp_path)
    try:
        yield process
    finally:
        process.kill()


# --- restarts under an in-process worker ------------------------------------------------


def every_service_restored(w: RunningWorker) -> bool:
    """Whether the listener and every service that lost its connection restored it."""
    last: dict[str, str] = {}
    for event in list(w.events):
        if isinstance(event, events.ConnectionLost | events.ConnectionRestored):
            last[event.service] = event.name
    return "listener" in last and set(last.values()) == {"connection_restored"}


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_worker_survives_two_restarts_mid_run(throwaway_cluster: Cluster, mode: str) -> None:
    dsn = migrated(throwaway_cluster)
    tasks = pgqueue.Registry()
    ran: collections.Counter[int] = collections.Counter()

    @tasks.task(name=TASK, queue=QUEUE)
    async def work(n: int, ctx: pgqueue.JobContext) -> None:
        await asyncio.sleep(0.005)
        ran[ctx.id] += 1

    ids = enqueue_jobs(dsn, TOTAL)
    with running_worker(dsn, tasks, concurrency=10) as w:
        restart_mid_run(throwaway_cluster, (mode, mode), lambda: len(ran), TOTAL)
        wait_all_succeeded(dsn, TOTAL)
        assert not w.of(events.WorkerStopped), "the worker stopped by itself"
        lost = w.of(events.ConnectionLost)
        restored = w.of(events.ConnectionRestored)
        assert lost and restored, (lost, restored)
        # Every service that lost its connection gets it back, the listener included
        # (it emits ConnectionRestored only once LISTEN runs again).
        wait_until(lambda: every_service_restored(w), timeout=15,
                   message="every service to report its connection restored")
        assert not w.of(events.ServiceError), w.of(events.ServiceError)
        fenced = len(w.of(events.JobLost))
    check_nothing_lost(dsn, ids, ran, f"in-process, 2 x {mode}", fenced)


# --- restarts under a `pgqueue worker` subprocess ---------------------------------------


def test_worker_process_survives_fast_then_immediate_restart(
        throwaway_cluster: Cluster, worker_process: WorkerProcess) -> None:
    dsn = migrated(throwaway_cluster)
    ids = enqueue_jobs(dsn, TOTAL)
    worker_process.start()
    restart_mid_run(throwaway_cluster, ("fast", "immediate"),
                    lambda: len(worker_process.ran()), TOTAL)
    wait_all_succeeded(dsn, TOTAL)
    assert worker_process.alive(), f"the worker exited by itself:\n{worker_process.log()}"
    log = worker_process.log()
    assert "database connection lost" in log, log
    assert "database connection restored" in log, log
    wait_until(lambda: any("database connection restored" in line and "service=listener" in line
                           for line in worker_process.log().splitlines()),
               timeout=15, message="the listener to log its connection restored")
    assert "Traceback" not in log, log
    fenced = log.count("outcome discarded")
    assert worker_process.stop() == 0, worker_process.log()
    check_nothing_lost(dsn, ids, worker_process.ran(), "subprocess, fast + immediate", fenced)


# --- the database is down when the worker starts ------------------------------------------


class RefusingServer:
    """Accepts TCP connections on the cluster's port and closes them at once.

    Stands in for the stopped cluster so the test can see the worker's attempts
    to connect (each one counted), which proves that it keeps retrying.
    """

    def __init__(self, port: int) -> None:
        self.attempts = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="refusing-server",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.attempts += 1
            conn.close()

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._sock.close()


def test_worker_started_while_database_is_down_waits_for_it(
        throwaway_cluster: Cluster, worker_process: WorkerProcess) -> None:
    dsn = migrated(throwaway_cluster)
    throwaway_cluster.stop()
    refusing = RefusingServer(throwaway_cluster.port)
    try:
        worker_process.start()
        # The first refused attempt is logged; the backoff is 0.5 s, then 1 s, 2 s...
        # so three attempts take about 1.5 s.
        wait_until(lambda: refusing.attempts >= 3 or not worker_process.alive(), timeout=20,
                   message="three connection attempts by the worker")
        assert worker_process.alive(), worker_process.log()
        attempts = refusing.attempts
    finally:
        refusing.close()
    log = worker_process.log()
    # Never connected, so not "lost": each failed attempt says why, with its back-off.
    assert "database connection lost" not in log, log
    assert log.count("cannot connect to the database; retrying") >= 2, log
    assert "database connection restored" not in log, log

    throwaway_cluster.start()
    wait_until(lambda: "database connection restored" in worker_process.log()
               or not worker_process.alive(), timeout=30,
               message="the worker to connect once the database is up")
    assert worker_process.alive(), worker_process.log()
    ids = enqueue_jobs(dsn, 5)
    wait_all_succeeded(dsn, len(ids))
    assert worker_process.alive(), worker_process.log()
    assert "database connection lost" not in worker_process.log(), worker_process.log()
    assert worker_process.stop() == 0, worker_process.log()
    check_nothing_lost(dsn, ids, worker_process.ran(), f"down at start, {attempts} attempts")


# --- commits acknowledged before a crash are kept -------------------------------------------


class Producer:
    """Enqueues one job per transaction in a loop, noting which commits succeeded.

    A commit interrupted by the restart is ambiguous (it may or may not have
    happened); a commit that returned is acknowledged and must survive.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.acknowledged: list[int] = []
        self.ambiguous = 0
        self.errors = 0
        self.unexpected: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                    while not self._stop.is_set():
                        job_id = pgqueue.enqueue(conn, TASK, {"n": n}, queue=QUEUE)
                        n += 1
                        try:
                            conn.commit()
                        except psycopg.OperationalError:
                            self.ambiguous += 1
                            raise
                        self.acknowledged.append(job_id)
            except psycopg.OperationalError:
                self.errors += 1
                self._stop.wait(0.05)  # the server restarts; try again shortly
            except Exception as exc:  # reported by the test, not lost in a dead thread
                self.unexpected.append(f"{type(exc).__name__}: {exc}")
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the producer did not stop"


def test_commits_acknowledged_before_an_immediate_restart_survive_it(
        throwaway_cluster: Cluster) -> None:
    dsn = migrated(throwaway_cluster)
    producer = Producer(dsn)
    try:
        wait_until(lambda: len(producer.acknowledged) >= 200 or producer.unexpected,
                   message="200 commits")
        throwaway_cluster.restart("immediate")
        at_restart = len(producer.acknowledged)
        wait_until(lambda: len(producer.acknowledged) >= at_restart + 100
                   or producer.unexpected, message="100 commits after the restart")
    finally:
        producer.stop()
    assert not producer.unexpected, producer.unexpected
    assert producer.errors >= 1, "the producer never saw the restart"
    acknowledged = set(producer.acknowledged)
    with psycopg.connect(dsn, autocommit=True) as conn:
        present = {row[0] for row in conn.execute(
            "SELECT id FROM pgqueue.jobs WHERE state = 'queued'")}
        finished = conn.execute("SELECT count(*) FROM pgqueue.finished_jobs").fetchone()
    missing = acknowledged - present
    assert not missing, f"{len(missing)} acknowledged jobs lost: {sorted(missing)[:20]}"
    assert finished == (0,), finished
    # At most the interrupted commits may or may not have happened.
    assert len(present - acknowledged) <= producer.ambiguous, (
        sorted(present - acknowledged), producer.ambiguous)
    print(f"\n[immediate restart under a producer] acknowledged={len(acknowledged)} "
          f"ambiguous={producer.ambiguous} present={len(present)} lost=0")

    # And they run: a worker drains them all.
    tasks = pgqueue.Registry()
    ran: collections.Counter[int] = collections.Counter()

    @tasks.task(name=TASK, queue=QUEUE)
    async def work(n: int, ctx: pgqueue.JobContext) -> None:
        ran[ctx.id] += 1

    with running_worker(dsn, tasks, concurrency=10):
        wait_all_succeeded(dsn, len(present))
    check_nothing_lost(dsn, sorted(present), ran, "after the immediate restart")
