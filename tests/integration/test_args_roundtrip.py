"""Property: args that pass validation are stored by PostgreSQL and come back equal.

One known difference: jsonb keeps numbers as numeric, so a float written in
exponent form with an integral value (``7.1e+16``) comes back as an int.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgqueue

TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)


def same_json(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if (isinstance(a, numbers) and isinstance(b, numbers)
            and not isinstance(a, bool) and not isinstance(b, bool)
            and isinstance(a, float) != isinstance(b, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-15)
    return type(a) is type(b) and a == b


def test_valid_args_round_trip_through_jsonb(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:

        @settings(max_examples=50, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(st.dictionaries(TEXT, JSON_LIKE, max_size=5))
        def check(args: dict[str, Any]) -> None:
            try:
                job_id = pgqueue.enqueue(conn, "t", args)
            except pgqueue.InvalidJobError:
                return
            row = conn.execute("SELECT args FROM pgqueue.jobs WHERE id = %s", [job_id]).fetchone()
            assert row is not None
            assert same_json(args, row[0]), (args, row[0])

        try:
            check()
        finally:
            conn.rollback()


def test_args_reach_the_handler_unchanged(clean_db: str) -> None:
    """The worker's sessions decode args themselves (UTF-8, then JSON): check the
    handler sees exactly what was enqueued, non-ASCII and escapes included."""
    from pgqueue import events
    from tests.support import running_worker, wait_until

    tasks = pgqueue.Registry()
    seen: list[dict[str, Any]] = []

    @tasks.task(name="echo.args")
    async def echo(**args: Any) -> None:
        seen.append(args)

    sent = [{"text": "☃ ünïcödé 𝄞 漢字", "quote": '"\\', "nested": {"list": [1, 2.5, None, True]}},
            {"empty": "", "newline": "a\nb", "rtl": "\u202e x"}, {}]
    with psycopg.connect(clean_db) as conn:
        for args in sent:
            pgqueue.enqueue(conn, "echo.args", args)
    with running_worker(clean_db, tasks) as w:
        wait_until(lambda: len(seen) == len(sent), timeout=20, message="all handled")
        assert not w.of(events.ServiceError)
    assert sorted(seen, key=repr) == sorted(sent, key=repr)
