"""Hostile names and values, and rows written by hand that break the rules.

Every statement is parameterised: quotes, semicolons, ``$$`` and SQL text in
names, keys and args are stored as data and execute nothing. NUL characters and
over-long values get a clear InvalidJobError before anything is sent. Rows
written with plain SQL that break the rules are refused by constraints, and a
job whose args do not fit its handler fails with a clear error while the
worker carries on.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import InvalidJobError, events
from tests.support import fetch, running_worker, scalar, wait_until

HOSTILE = [
    "'", "''", '"', "a'; DROP TABLE canary; --", "$$; DROP TABLE canary; $$",
    "$tag$ SELECT 1 $tag$", "\\x00", "); DELETE FROM pgqueue.jobs; --", "%(task)s", "%s",
    "{}", "☃ ünïcödé 𝄞", "\u202e reversed", "a" * 255,
]


@pytest.fixture
def canary(clean_db: str) -> str:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS canary (x int)")
    return clean_db


def canary_alive(dsn: str) -> bool:
    return bool(scalar(dsn, "SELECT to_regclass('canary') IS NOT NULL"))


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_unique_keys_and_args_are_data(canary: str, text: str) -> None:
    args = {"text": text, text[:50]: [text, {"nested": text}]}
    with psycopg.connect(canary) as conn:
        job = pgqueue.enqueue(conn, "hostile.task", args, queue="hostile", unique_key=text)
        many = pgqueue.enqueue_many(conn, [{"task": "hostile.task", "args": args,
                                            "queue": "hostile"}])
    rows = fetch(canary, "SELECT id, unique_key, args FROM pgqueue.jobs ORDER BY id")
    assert rows == [(job, text, args), (many[0], None, args)]
    assert canary_alive(canary)
    assert scalar(canary, "SELECT count(*) FROM pgqueue.jobs") == 2


@pytest.mark.parametrize("text", HOSTILE[:10])
@pytest.mark.parametrize("field", ["task", "queue"])
def test_hostile_names_are_refused_before_any_statement(canary: str, text: str,
                                                        field: str) -> None:
    with psycopg.connect(canary) as conn:
        params: dict[str, Any] = {"task": "hostile.task", "queue": "hostile"}
        params[field] = text
        with pytest.raises(InvalidJobError, match=f"not a valid {field} name"):
            pgqueue.enqueue(conn, params["task"], {}, queue=params["queue"])
        # The caller's transaction is still usable.
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert canary_alive(canary)


@pytest.mark.parametrize("text", HOSTILE[:10])
def test_hostile_names_through_the_sql_function_hit_the_domain_check(canary: str,
                                                                     text: str) -> None:
    with psycopg.connect(canary) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("SELECT pgqueue.enqueue(task => %s, queue => %s)", [text, text])
    assert canary_alive(canary)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"args": {"k": "a\x00b"}}, "NUL"),
    ({"args": {"a\x00": 1}}, "NUL"),
    ({"unique_key": "k\x00"}, "NUL"),
    ({"unique_key": "k" * 256}, "1 to 255 characters"),
    ({"queue": "q" * 65}, "not a valid queue name"),
    ({"task": "t" * 201}, "not a valid task name"),
])
def test_nul_and_over_long_values_get_a_clear_error(canary: str, kwargs: dict[str, Any],
                                                    message: str) -> None:
    call: dict[str, Any] = {"task": "hostile.task", "args": {}, "queue": "hostile", **kwargs}
    with psycopg.connect(canary) as conn:
        with pytest.raises(InvalidJobError, match=message):
            pgqueue.enqueue(conn, call.pop("task"), call.pop("args"), **call)
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert scalar(canary, "SELECT count(*) FROM pgqueue.jobs") == 0


# --- rows written by hand ---------------------------------------------------------------------

BAD_ROWS = [
    ("args '[1, 2]'", "INSERT INTO pgqueue.jobs (task, args) VALUES ('t', '[1, 2]')",
     psycopg.errors.CheckViolation),
    ("args 'null'", "INSERT INTO pgqueue.jobs (task, args) VALUES ('t', 'null')",
     psycopg.errors.CheckViolation),
    ("args a string", "INSERT INTO pgqueue.jobs (task, args) VALUES ('t', '\"x\"')",
     psycopg.errors.CheckViolation),
    ("negative attempt", "INSERT INTO pgqueue.jobs (task, attempt) VALUES ('t', -1)",
     psycopg.errors.CheckViolation),
    ("max_attempts 0", "INSERT INTO pgqueue.jobs (task, max_attempts) VALUES ('t', 0)",
     psycopg.errors.CheckViolation),
    ("priority out of range", "INSERT INTO pgqueue.jobs (task, priority) VALUES ('t', 5000)",
     psycopg.errors.CheckViolation),
    ("unknown state", "INSERT INTO pgqueue.jobs (task, state) VALUES ('t', 'exploded')",
     psycopg.errors.InvalidTextRepresentation),
    ("final state in the live table",
     "INSERT INTO pgqueue.jobs (task, state) VALUES ('t', 'succeeded')",
     psycopg.errors.CheckViolation),
    ("running without a worker", "INSERT INTO pgqueue.jobs (task, state) VALUES ('t', 'running')",
     psycopg.errors.CheckViolation),
    ("errors not an array", "INSERT INTO pgqueue.jobs (task, errors) VALUES ('t', '{}')",
     psycopg.errors.CheckViolation),
    ("empty unique key", "INSERT INTO pgqueue.jobs (task, unique_key) VALUES ('t', '')",
     psycopg.errors.CheckViolation),
    ("timeout not positive", "INSERT INTO pgqueue.jobs (task, timeout_seconds) VALUES ('t', 0)",
     psycopg.errors.CheckViolation),
    ("bad queue name", "INSERT INTO pgqueue.jobs (task, queue) VALUES ('t', 'a b')",
     psycopg.errors.CheckViolation),
    ("live state in history",
     "INSERT INTO pgqueue.finished_jobs (id, queue, task, args, priority, state, attempt, "
     "max_attempts, run_at, created_at, errors) VALUES (1, 'q', 't', '{}', 0, 'running', 1, "
     "1, now(), now(), '[]')", psycopg.errors.CheckViolation),
]


@pytest.mark.parametrize(("sql", "error"), [(s, e) for _, s, e in BAD_ROWS],
                         ids=[label for label, _, _ in BAD_ROWS])
def test_rows_that_break_the_rules_are_refused(clean_db: str, sql: str,
                                               error: type[Exception]) -> None:
    with psycopg.connect(clean_db) as conn, pytest.raises(error):
        conn.execute(sql)
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.all_jobs") == 0


def test_worker_fails_jobs_whose_args_do_not_fit_and_keeps_working(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="strict.add", queue="strict", max_attempts=1)
    def add(count: int) -> int:
        return int(count) + 1

    bad_args = [{"wrong": 1}, {"count": 1, "extra": 2}, {}, {"count": "not a number"},
                {"count": None}, {"count": {"deep": [1, 2]}}]
    with psycopg.connect(clean_db) as conn:
        # Written by hand, as another language might: no validation on the way in.
        bad = [conn.execute("SELECT pgqueue.enqueue(task => 'strict.add', queue => 'strict', "
                            "args => %s::jsonb, max_attempts => 1)",
                            [psycopg.types.json.Jsonb(a)]).fetchone()[0]  # type: ignore[index]
               for a in bad_args]
        good = pgqueue.enqueue(conn, "strict.add", {"count": 41}, queue="strict")
    with running_worker(clean_db, tasks) as w:
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs")
                   == len(bad) + 1, timeout=30, message="every job finished")
        assert not w.of(events.ServiceError), w.of(events.ServiceError)
    rows = dict((r[0], r[1:]) for r in fetch(
        clean_db, "SELECT id, state::text, last_error, result FROM pgqueue.finished_jobs"))
    assert rows[good] == ("succeeded", None, 42)
    for job_id in bad:
        state, error, _ = rows[job_id]
        assert state == "failed" and error, (job_id, rows[job_id])
    # The three that cannot bind say so plainly.
    for job_id in bad[:3]:
        assert "job args do not fit the handler" in rows[job_id][1]
