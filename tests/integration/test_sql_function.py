"""pgqueue.enqueue() in SQL, and the constraints that guard hand-written rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

import pgqueue


def one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def test_positional_call_from_plain_sql(conn: psycopg.Connection[Any]) -> None:
    job_id = one(conn, """SELECT pgqueue.enqueue('t', '{"a":1}', 'q')""")
    row = conn.execute(
        "SELECT task, args, queue, priority, max_attempts, run_at = created_at "
        "FROM pgqueue.jobs WHERE id = %s",
        [job_id],
    ).fetchone()
    assert row == ("t", {"a": 1}, "q", 0, 5, True)


def test_named_arguments(conn: psycopg.Connection[Any]) -> None:
    job_id = one(
        conn,
        "SELECT pgqueue.enqueue(task => 'report', queue => 'reports', priority => 10,"
        " max_attempts => 2, delay_seconds => 60, trace_context => 'tp')",
    )
    row = conn.execute(
        "SELECT task, queue, args, priority, max_attempts, run_at - created_at, trace_context "
        "FROM pgqueue.jobs WHERE id = %s",
        [job_id],
    ).fetchone()
    assert row == ("report", "reports", {}, 10, 2, timedelta(seconds=60), "tp")


def test_sql_and_python_share_unique_keys(conn: psycopg.Connection[Any]) -> None:
    from_sql = one(conn, "SELECT pgqueue.enqueue('t', unique_key => 'k1')")
    again = one(conn, "SELECT pgqueue.enqueue('other', '{\"x\":1}', unique_key => 'k1')")
    from_python = pgqueue.enqueue(conn, "t", unique_key="k1")
    assert from_sql == again == from_python
    assert one(conn, "SELECT count(*) FROM pgqueue.jobs") == 1


def test_run_at_and_delay_seconds_together_raise(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(pg_errors.InvalidParameterValue, match="not both"):
        conn.execute("SELECT pgqueue.enqueue('t', run_at => now(), delay_seconds => 5)")


def test_negative_delay_seconds_raise(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(pg_errors.InvalidParameterValue, match="delay_seconds must be >= 0"):
        conn.execute("SELECT pgqueue.enqueue('t', delay_seconds => -1)")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param("'t', '[1]'", pg_errors.CheckViolation, id="args-array"),
        pytest.param("'t', '{}', 'bad queue'", pg_errors.CheckViolation, id="queue"),
        pytest.param("'bad task'", pg_errors.CheckViolation, id="task"),
        pytest.param("'t', priority => 1001", pg_errors.CheckViolation, id="priority"),
        pytest.param("'t', max_attempts => 0", pg_errors.CheckViolation, id="max_attempts"),
        pytest.param("'t', unique_key => ''", pg_errors.CheckViolation, id="unique_key"),
    ],
)
def test_sql_function_rejects_bad_jobs(
    conn: psycopg.Connection[Any], call: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        conn.execute(f"SELECT pgqueue.enqueue({call})")


INSERT = (
    "INSERT INTO pgqueue.jobs (task, args, queue, priority, state) "
    "VALUES (%(task)s, %(args)s::jsonb, %(queue)s, %(priority)s, %(state)s)"
)
GOOD = {"task": "t", "args": "{}", "queue": "q", "priority": 0, "state": "queued"}


@pytest.mark.parametrize(
    ("change", "constraint"),
    [
        pytest.param({"args": "[1, 2]"}, "jobs_args_object", id="args-array"),
        pytest.param({"args": '"text"'}, "jobs_args_object", id="args-string"),
        pytest.param({"queue": "has space"}, "queue_name_check", id="queue-space"),
        pytest.param({"queue": ""}, "queue_name_check", id="queue-empty"),
        pytest.param({"queue": "q" * 65}, "queue_name_check", id="queue-long"),
        pytest.param({"queue": "-q"}, "queue_name_check", id="queue-dash-first"),
        pytest.param({"task": "x" * 201}, "task_name_check", id="task-long"),
        pytest.param({"task": ""}, "task_name_check", id="task-empty"),
        pytest.param({"task": "a b"}, "task_name_check", id="task-space"),
        pytest.param({"priority": 1001}, "jobs_priority_range", id="priority-high"),
        pytest.param({"priority": -1001}, "jobs_priority_range", id="priority-low"),
        pytest.param({"state": "succeeded"}, "jobs_live_state", id="succeeded-live"),
        pytest.param({"state": "running"}, "jobs_running_has_worker", id="running-no-worker"),
    ],
)
def test_check_constraints_reject_hand_written_rows(
    conn: psycopg.Connection[Any], change: dict[str, Any], constraint: str
) -> None:
    with pytest.raises(pg_errors.CheckViolation) as info:
        conn.execute(INSERT, {**GOOD, **change})
    assert info.value.diag.constraint_name == constraint


def test_the_good_hand_written_row_is_accepted(conn: psycopg.Connection[Any]) -> None:
    conn.execute(INSERT, GOOD)
    assert one(conn, "SELECT count(*) FROM pgqueue.jobs") == 1


def test_names_of_the_longest_allowed_length_are_accepted(conn: psycopg.Connection[Any]) -> None:
    longest = {"queue": "Q" + "q._-" * 15 + "q9-", "task": "_" + "t.:-" * 49 + "t9-"}
    conn.execute(INSERT, {**GOOD, **longest})
    assert one(conn, "SELECT length(queue) || '/' || length(task) FROM pgqueue.jobs") == "64/200"


def test_finished_jobs_reject_live_states(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(pg_errors.CheckViolation) as info:
        conn.execute(
            "INSERT INTO pgqueue.finished_jobs (id, queue, task, args, priority, state, attempt,"
            " max_attempts, run_at, created_at, errors)"
            " VALUES (1, 'q', 't', '{}', 0, 'queued', 1, 5, now(), now(), '[]')"
        )
    assert info.value.diag.constraint_name == "finished_jobs_final_state"


def test_append_error_keeps_the_newest_ten(conn: psycopg.Connection[Any]) -> None:
    errors = one(
        conn,
        "SELECT pgqueue.append_error(coalesce(e, '[]'), to_jsonb(n)) FROM ("
        " SELECT NULL::jsonb AS e, 0 AS n) s",
    )
    assert errors == [0]
    for n in range(1, 15):
        errors = one(conn, "SELECT pgqueue.append_error(%s::jsonb, to_jsonb(%s::int))",
                     [psycopg.types.json.Jsonb(errors), n])
    assert errors == list(range(5, 15))
