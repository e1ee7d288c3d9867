"""Admin functions: retry keeps the id, retry_failed, prune, list_jobs pages, get_job, workers."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.admin import InvalidArgumentError, RetryOutcome

Conn = psycopg.Connection[Any]

FINISH = """
WITH done AS (DELETE FROM pgqueue.jobs WHERE id = %(id)s RETURNING *)
INSERT INTO pgqueue.finished_jobs
    (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
     started_at, finished_at, worker_id, unique_key, last_error, errors, trace_context)
SELECT id, queue, task, args, priority, %(state)s::pgqueue.job_state, %(attempt)s, max_attempts,
       run_at, created_at, now(), now() - %(age)s * interval '1 second', worker_id, unique_key,
       %(error)s, %(errors)s::jsonb, trace_context
FROM done
"""


def finish(conn: Conn, job_id: int, state: str = "failed", *, attempt: int = 3,
           age_seconds: float = 0.0) -> None:
    """Move a live job to history as if a worker had finished it."""
    error = "ValueError: boom" if state == "failed" else None
    errors = [{"attempt": attempt, "kind": "error", "message": error,
               "traceback": "Traceback (most recent call last):\nValueError: boom\n"}]
    conn.execute(FINISH, {"id": job_id, "state": state, "attempt": attempt, "age": age_seconds,
                          "error": error, "errors": json.dumps(errors if error else [])})


def live_row(conn: Conn, job_id: int) -> tuple[Any, ...] | None:
    return conn.execute("SELECT state, attempt, queue, task, args FROM pgqueue.jobs "
                        "WHERE id = %s", [job_id]).fetchone()


def history_count(conn: Conn, job_id: int) -> int:
    row = conn.execute("SELECT count(*) FROM pgqueue.finished_jobs WHERE id = %s",
                       [job_id]).fetchone()
    assert row is not None
    return int(row[0])


def test_retry_moves_a_failed_job_back_with_its_id(conn: Conn) -> None:
    job_id = pgqueue.enqueue(conn, "send", {"to": "a"}, queue="mail")
    finish(conn, job_id, "failed")
    assert pgqueue.retry(conn, job_id) is RetryOutcome.RETRIED
    assert live_row(conn, job_id) == ("queued", 0, "mail", "send", {"to": "a"})
    assert history_count(conn, job_id) == 0
    detail = pgqueue.get_job(conn, job_id)
    assert detail is not None
    assert detail.errors[0]["message"] == "ValueError: boom"


def test_retry_a_cancelled_job(conn: Conn) -> None:
    job_id = pgqueue.enqueue(conn, "send")
    finish(conn, job_id, "cancelled")
    assert pgqueue.retry(conn, job_id) is RetryOutcome.RETRIED


def test_retry_says_why_nothing_changed(conn: Conn) -> None:
    live = pgqueue.enqueue(conn, "send")
    done = pgqueue.enqueue(conn, "send")
    finish(conn, done, "succeeded")
    assert pgqueue.retry(conn, live) is RetryOutcome.LIVE
    assert pgqueue.retry(conn, done) is RetryOutcome.SUCCEEDED
    assert pgqueue.retry(conn, 10**12) is RetryOutcome.NOT_FOUND
    assert history_count(conn, done) == 1


def test_retry_leaves_a_job_whose_unique_key_is_taken(conn: Conn) -> None:
    old = pgqueue.enqueue(conn, "send", unique_key="k1")
    finish(conn, old, "failed")
    new = pgqueue.enqueue(conn, "send", unique_key="k1")
    assert new != old
    assert pgqueue.retry(conn, old) is RetryOutcome.UNIQUE_KEY_TAKEN
    assert history_count(conn, old) == 1


def test_retry_is_one_statement_visible_to_others_at_commit(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as setup:
        job_id = pgqueue.enqueue(setup, "send")
        finish(setup, job_id)
    with psycopg.connect(clean_db) as conn, psycopg.connect(clean_db, autocommit=True) as other:
        assert pgqueue.retry(conn, job_id) is RetryOutcome.RETRIED
        assert history_count(other, job_id) == 1 and live_row(other, job_id) is None
        conn.commit()
        assert history_count(other, job_id) == 0 and live_row(other, job_id) is not None


def test_retry_wakes_workers(conn: Conn, listener: Any) -> None:
    job_id = pgqueue.enqueue(conn, "send", queue="wake")
    finish(conn, job_id)
    conn.commit()
    listener.payloads()
    pgqueue.retry(conn, job_id)
    conn.commit()
    assert listener.payloads() == ["wake"]


def test_sql_function_retry(conn: Conn) -> None:
    job_id = pgqueue.enqueue(conn, "send")
    finish(conn, job_id)
    row = conn.execute("SELECT pgqueue.retry(%s), pgqueue.retry(%s)", [job_id, job_id]).fetchone()
    assert row == ("retried", "live")


def test_retry_failed_of_one_queue_or_all(conn: Conn) -> None:
    ids = {q: [pgqueue.enqueue(conn, "t", queue=q) for _ in range(3)] for q in ("a", "b")}
    for queue_ids in ids.values():
        for job_id in queue_ids:
            finish(conn, job_id, "failed")
    ok = pgqueue.enqueue(conn, "t", queue="a")
    finish(conn, ok, "succeeded")
    assert pgqueue.retry_failed(conn, "a") == 3
    assert all(live_row(conn, i) is not None for i in ids["a"])
    assert all(live_row(conn, i) is None for i in ids["b"])
    assert pgqueue.retry_failed(conn) == 3
    assert pgqueue.retry_failed(conn) == 0
    assert history_count(conn, ok) == 1


def test_prune_deletes_old_history_in_batches(conn: Conn) -> None:
    old = [pgqueue.enqueue(conn, "t") for _ in range(7)]
    new = pgqueue.enqueue(conn, "t")
    for job_id in old:
        finish(conn, job_id, "succeeded", age_seconds=3 * 86400)
    finish(conn, new, "failed", age_seconds=60)
    assert pgqueue.prune(conn, timedelta(days=1), batch=3) == 7
    assert history_count(conn, new) == 1
    assert pgqueue.prune(conn, 3600) == 0
    assert pgqueue.prune(conn, 0) == 1


@pytest.mark.parametrize("value", [-1, "7d", float("nan"), True])
def test_prune_refuses_bad_ages(conn: Conn, value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="older_than"):
        pgqueue.prune(conn, value)


def test_list_jobs_newest_first_with_filters_and_cursor(conn: Conn) -> None:
    ids = []
    for i in range(12):
        job_id = pgqueue.enqueue(conn, "even" if i % 2 == 0 else "odd",
                                 queue="q1" if i < 6 else "q2")
        ids.append(job_id)
        if i % 3 == 0:
            finish(conn, job_id, "failed")
        elif i % 3 == 1:
            finish(conn, job_id, "succeeded")
    everything = pgqueue.list_jobs(conn, limit=100)
    assert [j.id for j in everything.jobs] == sorted(ids, reverse=True)
    assert everything.next_cursor is None

    seen: list[int] = []
    cursor = None
    while True:
        page = pgqueue.list_jobs(conn, limit=5, cursor=cursor)
        seen += [j.id for j in page.jobs]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids, reverse=True)

    failed = pgqueue.list_jobs(conn, state="failed")
    assert [j.id for j in failed.jobs] == [ids[i] for i in (9, 6, 3, 0)]
    assert {j.state for j in failed.jobs} == {"failed"}
    assert [j.id for j in pgqueue.list_jobs(conn, queue="q2", state="queued").jobs] == \
        [ids[i] for i in (11, 8)]
    assert [j.id for j in pgqueue.list_jobs(conn, task="odd", state="succeeded").jobs] == \
        [ids[i] for i in (7, 1)]
    assert pgqueue.list_jobs(conn, queue="nope").jobs == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"state": "done"}, "state must be one of"),
    ({"limit": 0}, "limit"),
    ({"limit": 5000}, "limit"),
    ({"cursor": -3}, "cursor"),
    ({"queue": "bad queue"}, "queue"),
    ({"task": ""}, "task"),
])
def test_list_jobs_refuses_bad_filters(conn: Conn, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        pgqueue.list_jobs(conn, **kwargs)


def test_list_jobs_pages_history_by_index(conn: Conn) -> None:
    conn.execute("INSERT INTO pgqueue.queues (name) VALUES ('big') ON CONFLICT DO NOTHING")
    conn.execute("""
        INSERT INTO pgqueue.finished_jobs (id, queue, task, args, priority, state, attempt,
            max_attempts, run_at, created_at, finished_at, errors)
        SELECT g, 'big', 't', '{}', 0,
               (CASE WHEN g % 2000 = 0 THEN 'failed' ELSE 'succeeded' END)::pgqueue.job_state,
               1, 5, now(), now(), now(), '[]'
        FROM generate_series(1, 100000) g""")
    conn.execute("ANALYZE pgqueue.finished_jobs")
    page = pgqueue.list_jobs(conn, state="failed", limit=10, cursor=90000)
    assert [j.id for j in page.jobs] == list(range(88000, 68000, -2000))
    plan = "\n".join(str(r[0]) for r in conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + pgqueue._sql.query("admin_jobs_list"),
        {"queue": None, "state": "failed", "task": None, "before_id": 90000, "limit": 10,
         "tags_all": None, "tags_any": None}))
    # Keyset pages through an index ordered by id within the queue: the general one,
    # or for failed jobs the partial index of failed jobs only.
    assert ("finished_jobs_queue_state_id_idx" in plan
            or "finished_jobs_failed_idx" in plan), plan
    assert "Seq Scan on finished_jobs" not in plan, plan
    assert "Sort Method: external" not in plan


def test_get_job_live_and_finished(conn: Conn) -> None:
    tp = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    job_id = pgqueue.enqueue(conn, "send", {"x": 1}, queue="mail", priority=5)
    conn.execute("UPDATE pgqueue.jobs SET trace_context = %s WHERE id = %s", [tp, job_id])
    live = pgqueue.get_job(conn, job_id)
    assert live is not None
    assert (live.state, live.args, live.priority, live.finished_at) == ("queued", {"x": 1}, 5, None)
    assert live.trace_id == tp.split("-")[1]
    finish(conn, job_id)
    done = pgqueue.get_job(conn, job_id)
    assert done is not None and done.state == "failed" and done.finished_at is not None
    assert done.errors[0]["traceback"].startswith("Traceback")
    assert pgqueue.get_job(conn, 10**12) is None
    with pytest.raises(InvalidArgumentError):
        pgqueue.get_job(conn, 0)


def test_list_workers_and_queues(conn: Conn) -> None:
    worker_id = uuid.uuid4()
    conn.execute("INSERT INTO pgqueue.workers (id, host, pid, queues, tasks, concurrency) "
                 "VALUES (%s, 'h1', 42, '{mail}', '{send}', 4)", [worker_id])
    job_id = pgqueue.enqueue(conn, "send", queue="mail")
    conn.execute("UPDATE pgqueue.jobs SET state = 'running', worker_id = %s, attempt = 1, "
                 "started_at = now(), heartbeat_at = now() WHERE id = %s", [worker_id, job_id])
    [worker] = pgqueue.list_workers(conn)
    assert (worker.host, worker.pid, worker.queues, worker.busy, worker.concurrency) == \
        ("h1", 42, ["mail"], 1, 4)
    assert worker.heartbeat_age_seconds >= 0
    [queue] = pgqueue.list_queues(conn)
    assert queue["queue"] == "mail" and queue["running"] == 1
    assert isinstance(queue["lag_seconds"], float)


# --- the CLI commands ------------------------------------------------------------------


def run_cli(*args: str) -> Any:
    from pgqueue.cli import main
    from tests.support import cli_runner

    return cli_runner().invoke(main, list(args), catch_exceptions=False)


def test_cli_status_jobs_show_retry_prune_workers(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        failed = pgqueue.enqueue(conn, "send", {"to": "a"}, queue="mail")
        finish(conn, failed)
        old = pgqueue.enqueue(conn, "send", queue="mail")
        finish(conn, old, "succeeded", age_seconds=10 * 86400)
    result = run_cli("status", "--dsn", clean_db)
    assert result.exit_code == 0 and "mail" in result.output and "FAILED" in result.output
    data = json.loads(run_cli("status", "--json", "--dsn", clean_db).output)
    assert data["queues"][0]["failed"] == 1

    result = run_cli("jobs", "list", "--state", "failed", "--dsn", clean_db)
    assert result.exit_code == 0 and str(failed) in result.output
    page = json.loads(run_cli("jobs", "list", "--json", "--limit", "1", "--dsn", clean_db).output)
    assert len(page["jobs"]) == 1 and page["next_cursor"] == page["jobs"][0]["id"]

    result = run_cli("jobs", "show", str(failed), "--dsn", clean_db)
    assert result.exit_code == 0 and "Traceback" in result.output
    assert json.loads(run_cli("jobs", "show", str(failed), "--json", "--dsn", clean_db)
                      .output)["state"] == "failed"
    assert run_cli("jobs", "show", "999999999", "--dsn", clean_db).exit_code == 3

    result = run_cli("retry", str(failed), "--dsn", clean_db)
    assert (result.exit_code, result.output.strip()) == (0, f"{failed}: retried")
    assert run_cli("retry", str(failed), "--dsn", clean_db).exit_code == 1  # live now
    assert run_cli("retry", "999999999", "--dsn", clean_db).exit_code == 3
    assert run_cli("retry", "--dsn", clean_db).exit_code == 2
    result = run_cli("retry", "--failed", "--queue", "mail", "--json", "--dsn", clean_db)
    assert json.loads(result.output) == {"queue": "mail", "retried": 0}

    result = run_cli("prune", "--older-than", "7d", "--dsn", clean_db)
    assert (result.exit_code, result.output.strip()) == (0, "deleted 1 finished job")
    assert run_cli("prune", "--older-than", "soon", "--dsn", clean_db).exit_code == 2
    result = run_cli("workers", "--dsn", clean_db)
    assert result.exit_code == 0 and "no workers" in result.output


def test_parse_duration() -> None:
    import click

    from pgqueue.cli.admin import parse_duration

    assert [parse_duration(t) for t in ("30s", "15m", "12h", "7d", "2w", "90s")] == \
        [30, 900, 43200, 604800, 1209600, 90]
    with pytest.raises(click.BadParameter, match="45s, 30m, 12h, 7d"):
        parse_duration("90")
