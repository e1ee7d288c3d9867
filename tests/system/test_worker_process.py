"""`pgqueue worker` as real processes: CLI end to end, kill -9, SIGSTOP fencing,
SIGTERM, and the multi-process supervisor."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from tests.apps import worker_app
from tests.support import fetch, running_worker, scalar, wait_until

REPO = Path(__file__).resolve().parents[2]
FAST = ["--poll-interval", "0.5", "--heartbeat-interval", "0.3", "--stall-timeout", "1.5"]


class WorkerProcess:
    def __init__(self, dsn: str, *extra: str, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "worker", "--app", "tests.apps.worker_app:tasks",
             "--dsn", dsn, *extra],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"),
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PGQUEUE_METRICS_PORT": "0"})

    @property
    def output(self) -> str:
        return self.log.read_text()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def spawn(clean_db: str, tmp_path: Path) -> Iterator[Any]:
    procs: list[WorkerProcess] = []

    def start(*extra: str) -> WorkerProcess:
        proc = WorkerProcess(clean_db, *extra, log=tmp_path / f"worker{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.proc.poll() is None:
            os.kill(proc.proc.pid, signal.SIGCONT)
        proc.kill()


def enqueue(dsn: str, task: str, args: dict[str, Any]) -> int:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue(conn, task, args, queue="app")


def running_under(dsn: str, job_id: int) -> Any:
    rows = fetch(dsn, "SELECT worker_pid FROM pgqueue.running_jobs WHERE id = %s", [job_id])
    return rows[0][0] if rows else None


def test_cli_worker_runs_committed_jobs_only(clean_db: str, spawn: Any) -> None:
    with psycopg.connect(clean_db) as conn:
        committed = pgqueue.enqueue(conn, "app.hello", {"name": "ada"}, queue="app")
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue(conn, "app.hello", {"name": "ghost"}, queue="app")
        conn.rollback()
    worker = spawn(*FAST)
    wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs") == 1)
    assert fetch(clean_db, "SELECT id, state::text, result FROM pgqueue.finished_jobs") == [
        (committed, "succeeded", "hello ada")]
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    # At INFO a summary per queue, here logged at the stop; no line per success.
    summary = [line for line in worker.output.splitlines() if "jobs finished" in line]
    assert len(summary) == 1
    assert " queue=app succeeded=1 retried=0 snoozed=0 failed=0 " in summary[0]
    assert "job succeeded" not in worker.output
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.workers") == 0


def test_kill_9_mid_job_is_reclaimed_and_finished_elsewhere(clean_db: str, spawn: Any) -> None:
    job = enqueue(clean_db, "app.slow_first", {"seconds": 60})
    victim = spawn(*FAST)
    wait_until(lambda: running_under(clean_db, job) == victim.proc.pid, message="job running")
    victim.proc.kill()
    victim.proc.wait()
    with running_worker(clean_db, worker_app.tasks) as rescuer:
        wait_until(lambda: rescuer.finished("succeeded"), timeout=30)
        assert rescuer.of(events.JobsReclaimed)
    state, attempt, result, errors = fetch(
        clean_db, "SELECT state::text, attempt, result, errors FROM pgqueue.finished_jobs")[0]
    assert (state, attempt, result["pid"]) == ("succeeded", 2, os.getpid())
    assert [e["kind"] for e in errors] == ["stalled"]
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.workers") == 0  # dead row removed


def test_frozen_worker_cannot_overwrite_the_newer_attempt(clean_db: str, spawn: Any) -> None:
    job = enqueue(clean_db, "app.slow_then_held", {"seconds": 2})
    frozen = spawn(*FAST)
    wait_until(lambda: running_under(clean_db, job) == frozen.proc.pid, message="job running")
    frozen.signal(signal.SIGSTOP)
    worker_app.RELEASE.clear()
    with running_worker(clean_db, worker_app.tasks) as rescuer:
        # Reclaimed and running again as attempt 2 under the rescuer (held there)...
        wait_until(lambda: running_under(clean_db, job) == os.getpid(), timeout=30,
                   message="attempt 2 running under the rescuer")
        # ...when the frozen worker wakes: its attempt-1 outcome must change nothing.
        frozen.signal(signal.SIGCONT)
        wait_until(lambda: "lost the job" in frozen.output, timeout=30)
        assert fetch(clean_db, "SELECT state::text, attempt FROM pgqueue.jobs") == [
            ("running", 2)]
        worker_app.RELEASE.set()
        wait_until(lambda: rescuer.finished("succeeded"), timeout=30)
    rows = fetch(clean_db, "SELECT state::text, attempt, result FROM pgqueue.all_jobs")
    assert rows == [("succeeded", 2, {"pid": os.getpid(), "attempt": 2})]
    frozen.signal(signal.SIGTERM)
    assert frozen.wait() == 0


def test_sigterm_lets_a_short_job_finish(clean_db: str, spawn: Any) -> None:
    job = enqueue(clean_db, "app.sleep", {"seconds": 1.0})
    worker = spawn(*FAST, "--shutdown-timeout", "20")
    wait_until(lambda: running_under(clean_db, job), message="job running")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert fetch(clean_db, "SELECT state::text FROM pgqueue.all_jobs") == [("succeeded",)]


@pytest.mark.parametrize("task", ["app.sleep", "app.slow_first"])
def test_sigterm_hands_a_long_job_back_at_once(clean_db: str, spawn: Any, task: str) -> None:
    job = enqueue(clean_db, task, {"seconds": 60})
    worker = spawn(*FAST, "--shutdown-timeout", "0.5", "--stall-timeout", "60",
                   "--heartbeat-interval", "1")
    wait_until(lambda: running_under(clean_db, job), message="job running")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    state, attempt, errors = fetch(
        clean_db, "SELECT state::text, attempt, errors FROM pgqueue.jobs WHERE id = %s", [job])[0]
    assert (state, attempt) == ("queued", 0)  # back at once, the attempt not spent
    assert errors[-1]["kind"] == "interrupted"
    assert "handed unfinished jobs back" in worker.output


def test_supervisor_restarts_a_dead_child_and_stops_all(clean_db: str, spawn: Any) -> None:
    supervisor = spawn(*FAST, "--processes", "2")

    def pids() -> set[int]:
        return {r[0] for r in fetch(clean_db, "SELECT pid FROM pgqueue.workers")}

    first = wait_until(lambda: len(pids()) == 2 and pids(), message="two children")
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(pids() - first) >= 1, timeout=30, message="a replacement child")
    job = enqueue(clean_db, "app.hello", {"name": "after restart"})
    wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs "
                                        "WHERE id = %s", [job]) == 1)
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait() == 0
    assert "worker process died; restarting" in supervisor.output
    live = [p for p in pids() if p != victim]
    assert all(not _alive(p) for p in live)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_worker_cli_reports_bad_app_and_dsn_clearly(clean_db: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pgqueue", "worker", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=30, check=False)

    bad_app = run("--app", "tests.apps.nowhere:tasks", "--dsn", clean_db)
    assert bad_app.returncode == 2 and "cannot import 'tests.apps.nowhere'" in bad_app.stderr
    not_registry = run("--app", "tests.apps.worker_app:hello", "--dsn", clean_db)
    assert "not a pgqueue.Registry" in not_registry.stderr
    no_dsn = subprocess.run(
        [sys.executable, "-m", "pgqueue", "worker", "--app", "tests.apps.worker_app:tasks"],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
        env={k: v for k, v in os.environ.items() if k not in ("PGQUEUE_DSN", "DATABASE_URL")})
    assert no_dsn.returncode == 2 and "no database given" in no_dsn.stderr


def test_periodic_ticks_survive_a_leader_kill_without_doubles(clean_db: str, spawn: Any) -> None:
    def start() -> WorkerProcess:
        proc: WorkerProcess = spawn("--app", "tests.apps.periodic_app:tasks", *FAST)
        return proc

    workers = [start() for _ in range(3)]

    def jobs() -> int:
        return int(scalar(clean_db, "SELECT count(*) FROM pgqueue.all_jobs"))

    def leader_pid() -> Any:
        rows = fetch(clean_db, "SELECT w.pid FROM pgqueue.leader l JOIN pgqueue.workers w "
                               "ON w.id = l.worker_id WHERE l.expires_at > now()")
        return rows[0][0] if rows else None

    wait_until(lambda: jobs() >= 3, timeout=30, message="first ticks")
    victim = next(w for w in workers if w.proc.pid == wait_until(leader_pid))
    victim.proc.kill()
    victim.proc.wait()
    before = jobs()
    wait_until(lambda: leader_pid() not in (None, victim.proc.pid), timeout=30,
               message="a new leader")
    wait_until(lambda: jobs() >= before + 3, timeout=30, message="ticks after the kill")
    for w in workers:
        if w is not victim:
            w.signal(signal.SIGTERM)
            assert w.wait() == 0
    keys = [r[0] for r in fetch(clean_db, "SELECT unique_key FROM pgqueue.all_jobs "
                                          "ORDER BY unique_key")]
    assert len(keys) == len(set(keys)), "a tick was enqueued twice"
    ticks = [datetime.fromisoformat(k.split(":", 2)[2]) for k in keys]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ticks)]
    # One job per tick; the only gap is the hand-over (policy "skip": the newest
    # tick runs, the ones missed while nobody led do not).
    assert min(gaps) >= 1.0 and max(gaps) <= 10.0, gaps
