"""The completer sends outcome columns as array literals it writes itself.

Every value must reach PostgreSQL unchanged: quotes, backslashes, commas,
braces, NULL-looking words, non-ASCII text and JSON documents holding all of them.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgqueue.worker.completer import sql_array

AWKWARD = ['plain', '', 'NULL', 'null', ' spaced ', 'a,b', '{x}', '"quoted"', 'back\\slash',
           '\\"', 'tab\there', 'line\nbreak', 'é ✓ 漢字', 'trailing\\']


def roundtrip(conn: psycopg.Connection[Any], values: list[Any], pg_type: str) -> list[Any]:
    row = conn.execute(f"SELECT %s::{pg_type}[]", (sql_array(values),)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def test_awkward_text_survives(conn: psycopg.Connection[Any]) -> None:
    values: list[Any] = [*AWKWARD, None]
    assert roundtrip(conn, values, "text") == values


def test_json_errors_survive_as_jsonb(conn: psycopg.Connection[Any]) -> None:
    errors = [{"kind": "error", "message": text, "traceback": f'File "x.py", {text}'}
              for text in AWKWARD]
    texts: list[Any] = [json.dumps(e, ensure_ascii=False) for e in errors]
    assert roundtrip(conn, [*texts, None], "jsonb") == [*errors, None]


def test_numbers_survive(conn: psycopg.Connection[Any]) -> None:
    assert roundtrip(conn, [1, 2**62, None], "bigint") == [1, 2**62, None]
    assert roundtrip(conn, [0.1, 1e-05, 12345.678, None], "float8") == [0.1, 1e-05, 12345.678,
                                                                       None]


def test_all_null_is_sent_as_null() -> None:
    assert sql_array([None, None]) is None


@pytest.mark.parametrize("size", [1, 1000])
def test_unnest_pads_a_null_column(conn: psycopg.Connection[Any], size: int) -> None:
    rows = conn.execute(
        "SELECT count(*), count(e) FROM unnest(%s::bigint[], %s::jsonb[]) AS u(i, e)",
        (sql_array(list(range(size))), sql_array([None] * size))).fetchone()
    assert rows == (size, 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\x00"))), min_size=1, max_size=20))
def test_any_text_survives(dsn: str, values: list[str | None]) -> None:
    with psycopg.connect(dsn) as conn:  # reads nothing of the schema: no clean-up needed
        expected = None if all(v is None for v in values) else values
        row = conn.execute("SELECT %s::text[]", (sql_array(list(values)),)).fetchone()
        assert row is not None and row[0] == expected
