"""Bad enqueue input raises InvalidJobError before anything runs.

Each case checks the message, that no statement reached the server, and that the
caller's transaction still commits its own earlier work.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import pgqueue


class CountingCursor(psycopg.Cursor[Any]):
    """Counts the statements pgqueue sends through it (pgqueue uses conn.cursor())."""

    executed = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        type(self).executed += 1
        return super().execute(*args, **kwargs)


@pytest.fixture
def counted(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    conn.cursor_factory = CountingCursor
    CountingCursor.executed = 0
    yield conn


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"d": value}
    return value


NOW = datetime.now(UTC)

BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("args-list", {"args": [1, 2]}, r"args must be a JSON object \(a dict\), got list"),
    ("args-str", {"args": '{"a": 1}'}, r"args must be a JSON object \(a dict\), got str"),
    ("args-int", {"args": 7}, r"args must be a JSON object \(a dict\), got int"),
    ("set", {"args": {"tags": {1, 2}}}, r"args\['tags'\] is a set, which is not JSON"),
    ("object", {"args": {"o": object()}}, r"args\['o'\] is a object, which is not JSON"),
    ("bytes", {"args": {"b": b"x"}}, r"args\['b'\] is a bytes, which is not JSON"),
    (
        "nested-datetime",
        {"args": {"outer": {"list": [{"when": NOW}]}}},
        r"args\['outer'\]\['list'\]\[0\]\['when'\] is a datetime, which is not JSON",
    ),
    ("nan", {"args": {"x": float("nan")}}, r"args\['x'\] is nan, which JSON cannot hold"),
    ("infinity", {"args": {"x": float("inf")}}, r"args\['x'\] is inf, which JSON cannot hold"),
    ("nul-in-string", {"args": {"s": "a\x00b"}}, r"args\['s'\] contains a NUL character"),
    ("nul-in-key", {"args": {"a\x00": 1}}, r"args key 'a\\x00' contains a NUL character"),
    ("lone-surrogate", {"args": {"s": "x\ud800"}}, r"args\['s'\] is not valid Unicode"),
    ("surrogate-key", {"args": {"\udc80": 1}}, r"args key '\\udc80' is not valid Unicode"),
    ("non-string-key", {"args": {1: "x"}}, r"args has a key 1 of type int"),
    ("too-deep", {"args": nested(250)}, r"is nested more than 200 levels deep"),
    ("huge-int", {"args": {"n": 10**5000}}, r"args\['n'\] is an integer too large"),
    ("queue-empty", {"queue": ""}, r"queue '' is not a valid queue name"),
    ("queue-too-long", {"queue": "q" * 65}, r"queue 'q{40}…' is not a valid queue name"),
    ("queue-space", {"queue": "my queue"}, r"queue 'my queue' is not a valid queue name"),
    ("queue-leading-dash", {"queue": "-q"}, r"queue '-q' is not a valid queue name"),
    ("queue-not-str", {"queue": 5}, r"queue must be a string, got int"),
    ("task-empty", {"task": ""}, r"task '' is not a valid task name"),
    ("task-too-long", {"task": "t" * 201}, r"task 't{40}…' is not a valid task name"),
    ("task-slash", {"task": "a/b"}, r"task 'a/b' is not a valid task name"),
    ("task-none", {"task": None}, r"task must be a string, got NoneType"),
    (
        "run_at-and-delay",
        {"run_at": NOW, "delay": 5},
        r"give run_at or delay, not both",
    ),
    ("naive-run_at", {"run_at": datetime(2030, 1, 1)}, r"run_at is a naive datetime"),
    ("run_at-not-datetime", {"run_at": "2030-01-01"}, r"run_at must be a datetime, got str"),
    ("max_attempts-zero", {"max_attempts": 0}, r"max_attempts must be between 1 and"),
    ("max_attempts-negative", {"max_attempts": -3}, r"max_attempts must be between 1 and"),
    ("max_attempts-float", {"max_attempts": 2.0}, r"max_attempts must be an int, got float"),
    ("priority-high", {"priority": 1001}, r"priority must be between -1000 and 1000, got 1001"),
    ("priority-low", {"priority": -1001}, r"priority must be between -1000 and 1000, got -1001"),
    ("priority-bool", {"priority": True}, r"priority must be an int, got bool"),
    ("delay-negative", {"delay": -1}, r"delay must be between 0 and 100 years"),
    ("delay-negative-timedelta", {"delay": timedelta(seconds=-1)}, r"delay must be between"),
    ("delay-nan", {"delay": float("nan")}, r"delay must be between 0 and 100 years"),
    ("delay-str", {"delay": "5"}, r"delay must be a timedelta or a number of seconds"),
    ("unique_key-empty", {"unique_key": ""}, r"unique_key must be 1 to 255 characters, got 0"),
    ("unique_key-long", {"unique_key": "k" * 256}, r"unique_key must be 1 to 255 characters"),
    ("unique_key-int", {"unique_key": 12}, r"unique_key must be a string, got int"),
    ("unique_key-nul", {"unique_key": "a\x00"}, r"unique_key contains a NUL character"),
]


@pytest.mark.parametrize(
    ("fields", "message"),
    [pytest.param(fields, message, id=name) for name, fields, message in BAD_INPUT],
)
def test_bad_input_raises_before_executing(
    counted: psycopg.Connection[Any], fields: dict[str, Any], message: str
) -> None:
    conn = counted
    earlier = pgqueue.enqueue(conn, "earlier_work", {"ok": True})
    sent = CountingCursor.executed
    call = {"task": "t", **fields}
    task = call.pop("task")
    with pytest.raises(pgqueue.InvalidJobError, match=message):
        pgqueue.enqueue(conn, task, **call)
    assert CountingCursor.executed == sent, "nothing may be sent for a bad job"
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    conn.commit()
    assert conn.execute("SELECT id, task FROM pgqueue.jobs").fetchall() == [
        (earlier, "earlier_work")
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [pytest.param(fields, message, id=name) for name, fields, message in BAD_INPUT[::4]],
)
def test_enqueue_many_names_the_bad_index_and_inserts_nothing(
    counted: psycopg.Connection[Any], fields: dict[str, Any], message: str
) -> None:
    conn = counted
    earlier = pgqueue.enqueue(conn, "earlier_work")
    sent = CountingCursor.executed
    jobs: list[Any] = [{"task": "t", "args": {"i": i}} for i in range(5)]
    jobs.insert(3, {"task": "t", **fields})
    with pytest.raises(pgqueue.InvalidJobError, match=r"^jobs\[3\]: " + message):
        pgqueue.enqueue_many(conn, jobs)
    assert CountingCursor.executed == sent
    conn.commit()
    assert conn.execute("SELECT id FROM pgqueue.jobs").fetchall() == [(earlier,)]


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        pytest.param({"task": "t"}, r"jobs must be an iterable of job mappings", id="one-dict"),
        pytest.param("t", r"jobs must be an iterable of job mappings", id="string"),
        pytest.param([("t", {})], r"jobs\[0\] must be a mapping, got tuple", id="tuple-job"),
        pytest.param([{"args": {}}], r"jobs\[0\] has no 'task'", id="no-task"),
        pytest.param(
            [{"task": "t"}, {"task": "t", "queue_name": "q", 1: 2}],
            r"jobs\[1\] has unknown keys: \['queue_name', 1\]",
            id="unknown-keys",
        ),
    ],
)
def test_enqueue_many_rejects_malformed_specs(
    conn: psycopg.Connection[Any], jobs: Any, message: str
) -> None:
    with pytest.raises(pgqueue.InvalidJobError, match=message):
        pgqueue.enqueue_many(conn, jobs)
    conn.commit()
    assert conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)


def test_invalid_job_error_is_a_value_error() -> None:
    assert issubclass(pgqueue.InvalidJobError, ValueError)
    assert issubclass(pgqueue.InvalidJobError, pgqueue.PgQueueError)


def test_long_names_are_shortened_in_messages(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(pgqueue.InvalidJobError) as info:
        pgqueue.enqueue(conn, "t" * 5000)
    assert len(str(info.value)) < 200
    assert re.search(r"'t{40}…'", str(info.value))
