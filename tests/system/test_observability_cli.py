"""`pgqueue worker` observability as real processes: JSON logs without secrets,
and one /metrics endpoint that sums the processes of --processes 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

import pgqueue
from tests.integration.test_metrics import free_port, scrape, value
from tests.support import fetch, scalar, wait_until

REPO = Path(__file__).resolve().parents[2]
SECRET = "Sup3r-Secret-pw"
FAST = ["--poll-interval", "0.5", "--heartbeat-interval", "0.3"]


def start(dsn: str, *extra: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pgqueue", "worker", "--app", "tests.apps.worker_app:tasks",
         "--dsn", dsn, *FAST, *extra],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    finally:
        proc.kill()


def with_password(dsn: str, **changes: Any) -> str:
    params = {**conninfo.conninfo_to_dict(dsn), **changes}
    # The test server trusts local connections: the password is sent nowhere.
    return (f"postgresql://{params.get('user', 'postgres')}:{SECRET}@{params['host']}:"
            f"{params.get('port', 5432)}/{params['dbname']}")


def json_lines(log: Path) -> list[dict[str, Any]]:
    text = log.read_text()
    assert SECRET not in text
    return [json.loads(line) for line in text.splitlines()]


def test_json_logs_one_object_per_line_and_no_password(clean_db: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with psycopg.connect(clean_db) as conn:
        job = pgqueue.enqueue(conn, "app.hello", {"name": "ada"}, queue="app")
    # At DEBUG, a line per succeeded job as well as the per-queue summary.
    proc = start(with_password(clean_db), "--log-format", "json", "--metrics-port", "0",
                 "--log-level", "debug", log=log)
    wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs") == 1)
    assert stop(proc) == 0
    lines = json_lines(log)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    (done,) = [line for line in lines if line["message"] == "job succeeded"]
    assert {k: done[k] for k in ("job_id", "task", "queue", "attempt", "outcome", "level")} == {
        "job_id": job, "task": "app.hello", "queue": "app", "attempt": 1,
        "outcome": "succeeded", "level": "debug"}
    assert done["duration_ms"] >= 0 and done["worker_id"]
    (summary,) = [line for line in lines if line["message"] == "jobs finished"]
    assert {k: summary[k] for k in ("level", "event", "queue", "succeeded", "retried",
                                    "failed", "cancelled")} == {
        "level": "info", "event": "jobs_finished", "queue": "app", "succeeded": 1,
        "retried": 0, "failed": 0, "cancelled": 0}
    assert summary["worker_id"] == done["worker_id"] and summary["interval_seconds"] >= 0
    assert [line["message"] for line in lines][-1] == "worker stopped"

    # At the default level (INFO): the summary only, logged at the stop here.
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "app.hello", "args": {"name": "bo"},
                                     "queue": "app"}] * 3)
    info = tmp_path / "info.log"
    proc = start(clean_db, "--log-format", "json", "--metrics-port", "0", log=info)
    wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs") == 4)
    assert stop(proc) == 0
    messages = [(line["message"], line.get("succeeded")) for line in json_lines(info)]
    assert ("job succeeded", None) not in messages
    assert messages[-2:] == [("jobs finished", 3), ("worker stopped", None)]

    # A database that does not answer: the connection errors are logged, redacted.
    down = tmp_path / "down.log"
    proc = start(with_password(clean_db, port=str(free_port())), "--log-format", "json",
                 "--metrics-port", "0", log=down)
    wait_until(lambda: "cannot connect to the database" in down.read_text(),
               message="cannot connect line")
    assert stop(proc) == 0
    failed = [line for line in json_lines(down)
              if line["message"] == "cannot connect to the database; retrying"]
    assert failed[0]["service"] == "startup" and failed[0]["level"] == "error"
    assert failed[0]["retry_in_seconds"] > 0 and failed[0]["gives_up_in_seconds"] > 0


def test_processes_add_up_on_one_endpoint(clean_db: str, tmp_path: Path) -> None:
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "app.slow_every", "args": {"seconds": 0.05},
                                     "queue": "app"}] * 24)
    port = free_port()
    began = time.monotonic()
    proc = start(clean_db, "--processes", "2", "--concurrency", "2", "--metrics-port",
                 str(port), log=tmp_path / "supervisor.log")
    try:
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs")
                   == 24, timeout=120, message="24 jobs finished")
        ran_for = time.monotonic() - began
        pids = {r[0]["pid"] for r in fetch(clean_db, "SELECT result FROM pgqueue.finished_jobs")}
        assert len(pids) == 2, "both processes ran jobs"
        labels = {"queue": "app", "task": "app.slow_every"}
        samples = wait_until(lambda: (s := scrape(port)) and value(
            s, "pgqueue_jobs_succeeded_total", **labels) == 24 and s,
            timeout=60, message="the supervisor's sum over both processes")
    finally:
        assert stop(proc) == 0
    assert value(samples, "pgqueue_jobs_started_total", **labels) == 24
    assert value(samples, "pgqueue_job_duration_seconds_count", **labels) == 24
    duration = value(samples, "pgqueue_job_duration_seconds_sum", **labels)
    # In seconds: at least the handlers' sleeps, at most 4 slots busy all along.
    assert duration is not None and 24 * 0.05 <= duration <= 4 * ran_for
    assert value(samples, "pgqueue_worker_slots") == 4
    assert value(samples, "pgqueue_worker_busy_slots") == 0
