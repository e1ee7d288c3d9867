"""Tags and meta given at enqueue, through every producer path, kept in history.

Every path stores the same row: enqueue and enqueue_async, enqueue_many by COPY
(no unique key) and by unnest (with one), a task's options, the SQL function, the
CLI and the HTTP API. Bad input raises InvalidJobError before anything is sent:
nothing is inserted and the caller's transaction goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.cli import main
from tests.support import cli_runner, fetch, post_json, running_worker, scalar, wait_until

Conn = psycopg.Connection[Any]

ODD = 'a "quoted", {braced} \\ back\\slash'  # what an array literal must escape


def stored(conn: Conn, job_id: int) -> tuple[list[str], dict[str, Any]]:
    row = conn.execute("SELECT tags, meta FROM pgqueue.jobs WHERE id = %(id)s UNION ALL "
                       "SELECT tags, meta FROM pgqueue.finished_jobs WHERE id = %(id)s",
                       {"id": job_id}).fetchone()
    assert row is not None, job_id
    return row[0], row[1]


def test_enqueue_stores_tags_in_order_deduplicated_and_meta(conn: Conn) -> None:
    job_id = pgqueue.enqueue(conn, "t", {"a": 1}, tags=["customer:42", "import", "customer:42",
                                                         ODD], meta={"source": "api", "n": [1]})
    assert stored(conn, job_id) == (["customer:42", "import", ODD],
                                    {"source": "api", "n": [1]})
    plain = pgqueue.enqueue(conn, "t")
    assert stored(conn, plain) == ([], {})
    a_set = pgqueue.enqueue(conn, "t", tags={"zeta", "alpha", "mu"})
    assert stored(conn, a_set)[0] == ["alpha", "mu", "zeta"]  # a set has no order: sorted
    a_tuple = pgqueue.enqueue(conn, "t", tags=("b", "a"), meta={})
    assert stored(conn, a_tuple) == (["b", "a"], {})


def test_enqueue_many_copy_and_unnest_paths_store_tags_and_meta(conn: Conn) -> None:
    copied = pgqueue.enqueue_many(conn, [
        {"task": "t", "tags": ["x", ODD, "x"], "meta": {"i": 0}},
        {"task": "t"},
        {"task": "t", "tags": {"b", "a"}},
    ])
    assert [stored(conn, i) for i in copied] == [
        (["x", ODD], {"i": 0}), ([], {}), (["a", "b"], {})]
    unnested = pgqueue.enqueue_many(conn, [
        {"task": "t", "unique_key": "k1", "tags": [ODD, "y"], "meta": {"i": 1}},
        {"task": "t", "unique_key": "k2"},
        {"task": "t", "unique_key": "k1", "tags": ["ignored"]},  # the holder keeps its own
    ])
    assert unnested[0] == unnested[2]
    assert [stored(conn, i) for i in unnested[:2]] == [([ODD, "y"], {"i": 1}), ([], {})]


def test_async_enqueue_and_task_options_store_tags_and_meta(clean_db: str) -> None:
    registry = pgqueue.Registry()

    @registry.task(name="tagged")
    def tagged() -> None: ...

    async def produce() -> list[int]:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            one = await pgqueue.enqueue_async(aconn, "t", tags=["async"], meta={"a": 1})
            many = await pgqueue.enqueue_many_async(aconn, [{"task": "t", "tags": ["m"]}])
            bound = await tagged.options(tags=["bound-async"]).enqueue_async(aconn)
            return [one, *many, bound]

    ids = asyncio.run(produce())
    with psycopg.connect(clean_db) as conn:
        ids.append(tagged.options(tags=["bound"], meta={"b": 2}).enqueue(conn))
        conn.commit()
        assert [stored(conn, i) for i in ids] == [
            (["async"], {"a": 1}), (["m"], {}), (["bound-async"], {}), (["bound"], {"b": 2})]


def test_sql_function_takes_tags_and_meta_and_drops_repeats(conn: Conn) -> None:
    row = conn.execute("SELECT pgqueue.enqueue('t', tags => ARRAY['b', 'a', 'b', 'c', 'a'], "
                       "meta => '{\"by\": \"sql\"}')").fetchone()
    assert row is not None
    assert stored(conn, row[0]) == (["b", "a", "c"], {"by": "sql"})
    old_style = conn.execute("SELECT pgqueue.enqueue('t', '{}', 'q', 0, NULL, 3)").fetchone()
    assert old_style is not None and stored(conn, old_style[0]) == ([], {})


@pytest.mark.parametrize(("sql", "constraint"), [
    ("SELECT pgqueue.enqueue('t', tags => ARRAY['ok', NULL])", "jobs_tags_valid"),
    ("SELECT pgqueue.enqueue('t', tags => ARRAY[''])", "jobs_tags_valid"),
    ("SELECT pgqueue.enqueue('t', tags => ARRAY(SELECT g::text FROM generate_series(1, 21) g))",
     "jobs_tags_valid"),
    ("SELECT pgqueue.enqueue('t', meta => '[1]')", "jobs_meta_object"),
])
def test_sql_function_refuses_bad_tags_and_meta_by_constraint(conn: Conn, sql: str,
                                                              constraint: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match=constraint):
        conn.execute(sql)


@pytest.mark.parametrize(("options", "message"), [
    ({"tags": "import"}, "tags must be a list, tuple or set of strings, got str"),
    ({"tags": {"a": 1}}, "tags must be a list, tuple or set of strings, got dict"),
    ({"tags": (t for t in "ab")}, "got generator"),
    ({"tags": ["ok", 7]}, "tags[1] is 7 (int); tags are strings"),
    ({"tags": ["ok", ""]}, "tags[1] must be 1 to 100 characters, got 0"),
    ({"tags": ["x" * 101]}, "tags[0] must be 1 to 100 characters, got 101"),
    ({"tags": ["nul\x00"]}, "tags[0] contains a NUL character"),
    ({"tags": ["\ud800"]}, "tags[0] is not valid Unicode"),
    ({"tags": [f"t{i}" for i in range(21)]}, "tags holds 21 distinct tags; at most 20"),
    ({"meta": [1, 2]}, "meta must be a JSON object (a dict), got list"),
    ({"meta": {"when": object()}}, "meta['when'] is a object"),
    ({"meta": {"k": float("nan")}}, "meta['k'] is nan"),
    ({"meta": {"k": "\x00"}}, "meta['k'] contains a NUL character"),
])
def test_bad_tags_or_meta_raise_before_anything_is_sent(conn: Conn, options: dict[str, Any],
                                                        message: str) -> None:
    before = pgqueue.enqueue(conn, "t", {"before": True})
    with pytest.raises(pgqueue.InvalidJobError) as raised:
        pgqueue.enqueue(conn, "t", **options)
    assert message in str(raised.value)
    with pytest.raises(pgqueue.InvalidJobError) as in_many:
        pgqueue.enqueue_many(conn, [{"task": "t"}, {"task": "t", **options}])  # type: ignore[typeddict-item]
    assert str(in_many.value).startswith("jobs[1]: ") and message in str(in_many.value)
    after = pgqueue.enqueue(conn, "t")  # the transaction is still usable
    conn.commit()
    assert [r[0] for r in conn.execute("SELECT id FROM pgqueue.jobs ORDER BY id")] == [before,
                                                                                     after]


def test_twenty_tags_after_deduplication_are_allowed(conn: Conn) -> None:
    tags = [f"t{i % 20}" for i in range(40)]
    job_id = pgqueue.enqueue(conn, "t", tags=tags)
    assert stored(conn, job_id)[0] == [f"t{i}" for i in range(20)]


def test_tags_and_meta_are_kept_in_history_and_by_a_retry(clean_db: str) -> None:
    registry = pgqueue.Registry()

    @registry.task(name="fields.ok")
    def ok() -> None: ...

    @registry.task(name="fields.bad", max_attempts=1)
    def bad() -> None:
        raise pgqueue.PermanentError("no")

    with psycopg.connect(clean_db, autocommit=True) as conn:
        good = pgqueue.enqueue(conn, "fields.ok", tags=["kept"], meta={"m": 1})
        failed = pgqueue.enqueue(conn, "fields.bad", tags=["retried"], meta={"m": 2})
    with running_worker(clean_db, registry) as w:
        wait_until(lambda: len(w.finished()) == 2, timeout=60, message="both jobs to finish")
    assert fetch(clean_db, "SELECT id, state::text, tags, meta FROM pgqueue.finished_jobs "
                           "ORDER BY id") == [(good, "succeeded", ["kept"], {"m": 1}),
                                              (failed, "failed", ["retried"], {"m": 2})]
    with psycopg.connect(clean_db, autocommit=True) as conn:
        assert pgqueue.admin.retry(conn, failed).value == "retried"
    assert fetch(clean_db, "SELECT tags, meta FROM pgqueue.jobs WHERE id = %s",
                 [failed]) == [(["retried"], {"m": 2})]


def test_cli_enqueue_takes_tags_and_meta(clean_db: str) -> None:
    result = cli_runner().invoke(main, ["enqueue", "t", "--tag", "a", "--tag", "b", "--tag", "a",
                                        "--meta", '{"from": "cli"}', "--dsn", clean_db])
    assert result.exit_code == 0, result.output
    job_id = int(result.stdout.split()[0])
    assert fetch(clean_db, "SELECT tags, meta FROM pgqueue.jobs WHERE id = %s",
                 [job_id]) == [(["a", "b"], {"from": "cli"})]
    for args, message in ((["--meta", "{nope"], "not valid JSON"),
                          (["--meta", "[1]"], "meta must be a JSON object"),
                          (["--tag", ""], "tags[0] must be 1 to 100 characters")):
        bad = cli_runner().invoke(main, ["enqueue", "t", *args, "--dsn", clean_db])
        assert bad.exit_code != 0 and message in bad.output, bad.output
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 1


def test_api_enqueue_takes_tags_and_meta(dashboards: Callable[..., int], clean_db: str) -> None:
    base = f"http://127.0.0.1:{dashboards()}"
    status, body = post_json(f"{base}/api/jobs", {"task": "t", "tags": ["api", "x", "api"],
                                                  "meta": {"k": 1}})
    assert status == 201, body
    assert fetch(clean_db, "SELECT tags, meta FROM pgqueue.jobs WHERE id = %s",
                 [body["id"]]) == [(["api", "x"], {"k": 1})]
    for bad, message in (({"tags": "api"}, "tags must be a list"),
                         ({"tags": [""]}, "tags[0] must be 1 to 100 characters"),
                         ({"meta": [1]}, "meta must be a JSON object")):
        status, body = post_json(f"{base}/api/jobs", {"task": "t", **bad})
        assert status == 400 and message in body["error"], body
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 1
