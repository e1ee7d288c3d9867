"""Reads from a real streaming replica, writes to the primary (``--read-dsn``).

One primary and its hot standby per module (``replica_pair``), and one dashboard
on both. Each test works in a queue of its own, so none needs the tables emptied.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

import pgqueue
from pgqueue.cli import main
from tests.support import cli_runner, serving_dashboard, wait_until
from tests.system.replica import Pair, replica_pair

__all__ = ["replica_pair"]  # the fixture, imported for pytest

REPLAY_TIMEOUT_SECONDS = 30.0


@pytest.fixture(scope="module")
def dashboard(replica_pair: Pair) -> Iterator[str]:
    """The base URL of a dashboard reading the standby, writing the primary."""
    with serving_dashboard(replica_pair.primary.dsn, read_dsn=replica_pair.standby.dsn,
                           pool_timeout_seconds=2.0) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def queue() -> str:
    return f"rq{uuid.uuid4().hex[:10]}"


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return cli_runner().invoke(main, list(args), env=env, catch_exceptions=False)


def enqueue(pair: Pair, queue: str) -> int:
    with psycopg.connect(pair.primary.dsn, autocommit=True) as conn:
        return pgqueue.enqueue(conn, "send", {"to": "a"}, queue=queue)


def get_json(url: str) -> tuple[int, dict[str, str], Any]:
    status, headers, body = call(url)
    return status, headers, json.loads(body)


def job_ids(base: str, queue: str) -> list[int]:
    status, _, body = get_json(f"{base}/api/jobs?queue={queue}")
    assert status == 200, body
    return [job["id"] for job in body["jobs"]]


def state_on_primary(pair: Pair, job_id: int) -> str:
    with psycopg.connect(pair.primary.dsn, autocommit=True) as conn:
        job = pgqueue.admin.get_job(conn, job_id)
    assert job is not None
    return job.state


# --- reads ----------------------------------------------------------------------------


def test_status_jobs_and_the_api_read_the_replica(replica_pair: Pair, dashboard: str,
                                                  queue: str) -> None:
    pair = replica_pair
    job_id = enqueue(pair, queue)
    pair.wait_replayed()

    def caught_up_status() -> Any:
        result = cli("status", "--dsn", pair.primary.dsn, "--read-dsn", pair.standby.dsn)
        assert result.exit_code == 0, result.output
        return result if "caught up with the primary" in result.output else None

    result = wait_until(caught_up_status, timeout=REPLAY_TIMEOUT_SECONDS,
                        message="pgqueue status to say the replica caught up")
    assert "reading from a replica" in result.output and queue in result.output
    as_json = json.loads(cli("status", "--json", "--dsn", pair.primary.dsn,
                             "--read-dsn", pair.standby.dsn).output)
    assert as_json["read_from"]["read_from"] == "replica"
    assert as_json["read_from"]["measured_by"] == "wal"
    assert any(q["queue"] == queue for q in as_json["queues"])

    # No --dsn at all: the environment's read DSN is enough for reads.
    listed = cli("jobs", "list", "--queue", queue, env={"PGQUEUE_READ_DSN": pair.standby.dsn,
                                                         "PGQUEUE_DSN": ""})
    assert listed.exit_code == 0 and str(job_id) in listed.output, listed.output
    shown = cli("jobs", "show", str(job_id), "--json", "--read-dsn", pair.standby.dsn)
    assert shown.exit_code == 0 and json.loads(shown.output)["queue"] == queue

    status, headers, body = get_json(f"{dashboard}/api/jobs?queue={queue}")
    assert status == 200 and [j["id"] for j in body["jobs"]] == [job_id]
    assert body["read_from"]["read_from"] == "replica"
    assert headers["Pgqueue-Read-From"].startswith("replica; lag_seconds=")
    status, _, replica = get_json(f"{dashboard}/api/replica")
    assert status == 200 and replica["read_from"] == "replica" and replica["read_dsn"] is True
    _, _, page = call(f"{dashboard}/")
    assert b"reading from a replica" in page and queue.encode() in page


def test_a_read_dsn_naming_the_primary_says_primary(replica_pair: Pair) -> None:
    result = cli("status", "--dsn", replica_pair.primary.dsn,
                 "--read-dsn", replica_pair.primary.dsn)
    assert result.exit_code == 0, result.output
    assert "reading from the primary (the read DSN is not a replica)" in result.output


def test_a_bad_read_dsn_is_a_clear_error(replica_pair: Pair) -> None:
    for bad in ("host=127.0.0.1 port=1 user=postgres connect_timeout=5", "not a dsn"):
        result = cli("jobs", "list", "--dsn", replica_pair.primary.dsn, "--read-dsn", bad)
        assert result.exit_code == 1, result.output
        assert f"the read replica {bad!r}" in result.stderr and "unavailable" in result.stderr


# --- writes ---------------------------------------------------------------------------


def test_actions_go_to_the_primary(replica_pair: Pair, dashboard: str, queue: str) -> None:
    pair = replica_pair
    job_id = enqueue(pair, queue)
    # The control: the same write sent to the standby is refused loudly.
    with psycopg.connect(pair.standby.dsn, autocommit=True) as standby, \
            pytest.raises(pg_errors.ReadOnlySqlTransaction):
        pgqueue.cancel(standby, job_id)

    status, _, body = call(f"{dashboard}/api/jobs/{job_id}/cancel", "POST", {})
    assert status == 200, body
    assert state_on_primary(pair, job_id) == "cancelled"
    status, _, body = call(f"{dashboard}/api/jobs/{job_id}/retry", "POST", {})
    assert status == 200 and json.loads(body)["outcome"] == "retried", body
    assert state_on_primary(pair, job_id) == "queued"
    status, _, body = call(f"{dashboard}/api/jobs/bulk", "POST",
                           {"action": "cancel", "filter": {"queue": queue}})
    assert status == 200 and json.loads(body)["changed"] == 1, body
    assert state_on_primary(pair, job_id) == "cancelled"
    status, _, body = call(f"{dashboard}/api/queues/{queue}/pause", "POST", {})
    assert status == 200, body


# --- lag ------------------------------------------------------------------------------


@pytest.fixture
def paused_replay(replica_pair: Pair) -> Iterator[None]:
    with psycopg.connect(replica_pair.standby.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        with psycopg.connect(replica_pair.standby.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


def test_a_lagging_replica_shows_its_lag_and_not_yet_the_job(
        replica_pair: Pair, dashboard: str, queue: str, request: pytest.FixtureRequest) -> None:
    pair = replica_pair
    enqueue(pair, queue)  # so the standby has replayed a commit: its age is known
    pair.wait_replayed()
    request.getfixturevalue("paused_replay")
    late = enqueue(pair, queue)

    status, headers, replica = get_json(f"{dashboard}/api/replica")
    assert status == 200, replica
    assert replica["caught_up"] is False and replica["replay_paused"] is True
    assert replica["lag_bytes"] > 0 and replica["lag_seconds"] >= 0
    assert late not in job_ids(dashboard, queue)
    _, headers, _ = call(f"{dashboard}/api/queues")
    assert "replay_paused" in headers["Pgqueue-Read-From"]
    _, _, page = call(f"{dashboard}/")
    assert b"replica behind" in page and b"behind the primary" in page

    result = cli("status", "--dsn", pair.primary.dsn, "--read-dsn", pair.standby.dsn)
    assert result.exit_code == 0, result.output
    assert "behind the primary" in result.output and "replay is paused" in result.output
    shown = cli("jobs", "show", str(late), "--read-dsn", pair.standby.dsn)
    assert shown.exit_code == 3 and "on the read replica" in shown.output, shown.output

    with psycopg.connect(pair.standby.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_resume()")
    wait_until(lambda: late in job_ids(dashboard, queue), timeout=REPLAY_TIMEOUT_SECONDS,
               message="the job to reach the replica once replay resumed")


# --- a replica that is down -----------------------------------------------------------


@pytest.fixture
def stopped_standby(replica_pair: Pair) -> Iterator[None]:
    replica_pair.standby.stop()
    try:
        yield
    finally:
        replica_pair.standby.start()
        replica_pair.wait_replayed()


def test_a_down_replica_is_a_clear_error_and_writes_still_work(
        replica_pair: Pair, dashboard: str, queue: str, stopped_standby: None) -> None:
    pair = replica_pair
    port = str(pair.standby.port)
    result = cli("status", "--dsn", pair.primary.dsn, "--read-dsn", pair.standby.dsn)
    assert result.exit_code == 1
    assert "the read replica" in result.stderr and port in result.stderr, result.stderr
    assert "writes go to the primary" in result.stderr
    refused = cli("dashboard", "--dsn", pair.primary.dsn, "--read-dsn", pair.standby.dsn,
                  "--port", "0")
    assert refused.exit_code == 1 and "the read replica" in refused.stderr

    for _ in range(2):  # a pooled connection that broke, then no connection at all
        status, _, body = call(f"{dashboard}/api/queues")
        assert status == 503, body
        error = json.loads(body)["error"]
        assert "the read replica" in error and port in error, error
    status, _, page = call(f"{dashboard}/")
    assert status == 503 and b"the read replica" in page

    status, _, body = call(f"{dashboard}/api/jobs", "POST", {"task": "send", "queue": queue})
    assert status == 201, body
    job_id = json.loads(body)["id"]
    status, _, body = call(f"{dashboard}/api/jobs/{job_id}/cancel", "POST", {})
    assert status == 200, body
    assert state_on_primary(pair, job_id) == "cancelled"
