"""Throttle (unique_for) and debounce of unique keys, one producer at a time.

The races of many producers are in test_key_modes_race.py. Each mode is driven
through the public API: enqueue, enqueue_many, the SQL function, the CLI and
the HTTP API; bad input changes nothing and leaves the transaction usable.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.cli import main
from tests.support import cli_runner, fetch, post_json, running_worker, scalar, wait_until

Conn = psycopg.Connection[Any]

# What the worker's outcome writer does: the row leaves the live table for history.
FINISH = """
WITH gone AS (DELETE FROM pgqueue.jobs j WHERE j.id = %(id)s RETURNING j)
INSERT INTO pgqueue.finished_jobs
SELECT (pgqueue.finished_row(g.j, 'succeeded', NULL, (g.j).errors)).* FROM gone g
"""


def finish(conn: Conn, job_id: int, *, created_ago: float | None = None) -> None:
    """Move a live job to history; ``created_ago`` seconds backdates its creation."""
    conn.execute(FINISH, {"id": job_id})
    if created_ago is not None:
        conn.execute("UPDATE pgqueue.finished_jobs SET created_at = now() - %s * interval "
                     "'1 second' WHERE id = %s", [created_ago, job_id])


def jobs_with_key(dsn: str, key: str) -> list[int]:
    return [r[0] for r in fetch(dsn, "SELECT id FROM pgqueue.jobs WHERE unique_key = %(k)s "
                                     "UNION ALL SELECT id FROM pgqueue.finished_jobs "
                                     "WHERE unique_key = %(k)s ORDER BY 1", {"k": key})]


# --- throttle ---------------------------------------------------------------------


def test_throttle_holds_the_key_after_the_job_finished(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        first = pgqueue.enqueue(conn, "t", unique_key="report", unique_for=timedelta(minutes=10))
        assert pgqueue.enqueue(conn, "t", unique_key="report", unique_for=600) == first  # live
        finish(conn, first)
        assert pgqueue.enqueue(conn, "t", unique_key="report", unique_for=600) == first  # history
        # The default mode only looks at live jobs: the key is free there.
        second = pgqueue.enqueue(conn, "t", unique_key="report")
        assert second != first
        assert pgqueue.enqueue(conn, "t", unique_key="report", unique_for=600) == second
    assert jobs_with_key(clean_db, "report") == [first, second]


@pytest.mark.parametrize(("created_ago", "held"), [(590.0, True), (610.0, False)])
def test_throttle_window_counts_from_the_job_creation(clean_db: str, created_ago: float,
                                                      held: bool) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        first = pgqueue.enqueue(conn, "t", unique_key="k", unique_for=600)
        finish(conn, first, created_ago=created_ago)
        again = pgqueue.enqueue(conn, "t", unique_key="k", unique_for=600)
    assert (again == first) is held
    assert len(jobs_with_key(clean_db, "k")) == (1 if held else 2)


def test_throttle_returns_the_newest_job_of_the_window(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        old = pgqueue.enqueue(conn, "t", unique_key="k")
        finish(conn, old, created_ago=300)
        new = pgqueue.enqueue(conn, "t", unique_key="k")
        finish(conn, new, created_ago=100)
        assert pgqueue.enqueue(conn, "t", unique_key="k", unique_for=600) == new
        assert pgqueue.enqueue(conn, "t", unique_key="k", unique_for=200) == new
        fresh = pgqueue.enqueue(conn, "t", unique_key="k", unique_for=50)
    assert fresh not in (old, new)


def test_a_live_job_holds_a_throttled_key_whatever_its_age(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        live = pgqueue.enqueue(conn, "t", unique_key="k", delay=3600)
        conn.execute("UPDATE pgqueue.jobs SET created_at = now() - interval '1 day' "
                     "WHERE id = %s", [live])
        assert pgqueue.enqueue(conn, "t", unique_key="k", unique_for=60) == live


def test_throttle_in_one_transaction_and_after_a_rollback(conn: Conn) -> None:
    first = pgqueue.enqueue(conn, "t", unique_key="k", unique_for=600)
    finish(conn, first)  # finished within the same transaction: still seen
    assert pgqueue.enqueue(conn, "t", unique_key="k", unique_for=600) == first
    conn.rollback()
    again = pgqueue.enqueue(conn, "t", unique_key="k", unique_for=600)
    conn.commit()
    assert again != first and jobs_with_key(conn.info.dsn, "k") == [again]


@pytest.mark.parametrize("isolation", [psycopg.IsolationLevel.REPEATABLE_READ,
                                       psycopg.IsolationLevel.SERIALIZABLE])
def test_throttle_refuses_a_transaction_that_cannot_see_later_commits(
        clean_db: str, isolation: psycopg.IsolationLevel) -> None:
    with psycopg.connect(clean_db) as conn:
        conn.isolation_level = isolation
        with pytest.raises(pgqueue.InvalidJobError, match="needs a READ COMMITTED transaction"):
            pgqueue.enqueue(conn, "t", unique_key="k", unique_for=60)
        conn.rollback()
        # Debounce has no such need: it is refused nowhere.
        job_id = pgqueue.enqueue(conn, "t", unique_key="d", debounce=60)
        conn.commit()
    assert jobs_with_key(clean_db, "k") == [] and jobs_with_key(clean_db, "d") == [job_id]


# --- debounce ---------------------------------------------------------------------


def run_at_of(dsn: str, job_id: int) -> Any:
    return scalar(dsn, "SELECT run_at FROM pgqueue.jobs WHERE id = %s", [job_id])


def test_debounce_pushes_the_pending_job_out_and_keeps_its_args(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        first = pgqueue.enqueue(conn, "t", {"v": 1}, unique_key="d", debounce=30,
                                tags=["first"], meta={"m": 1})
        due = [run_at_of(clean_db, first)]
        for v in range(2, 6):
            assert pgqueue.enqueue(conn, "t", {"v": v}, unique_key="d",
                                   debounce=timedelta(seconds=30), tags=["later"]) == first
            due.append(run_at_of(clean_db, first))
        created, now = conn.execute("SELECT created_at, now() FROM pgqueue.jobs").fetchone() \
            or (None, None)
    assert due == sorted(due) and due[0] < due[-1], due  # each call pushed it out
    assert timedelta(seconds=29) < due[-1] - created and due[-1] - now <= timedelta(seconds=30)
    assert fetch(clean_db, "SELECT args, tags, meta FROM pgqueue.jobs") == [
        ({"v": 1}, ["first"], {"m": 1})]


def test_debounce_with_replace_takes_the_new_args_meta_and_tags(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        first = pgqueue.enqueue(conn, "t", {"v": 1}, unique_key="d", debounce=30,
                                tags=["a"], meta={"m": 1})
        assert pgqueue.enqueue(conn, "t", {"v": 2}, unique_key="d", debounce=60,
                               on_conflict="replace", tags=["b"], meta={"m": 2}) == first
        assert fetch(clean_db, "SELECT args, tags, meta, run_at - now() > interval '59 s' "
                               "FROM pgqueue.jobs") == [({"v": 2}, ["b"], {"m": 2}, True)]
        # The new call decides when: a shorter debounce brings the job nearer.
        pgqueue.enqueue(conn, "t", {"v": 3}, unique_key="d", debounce=5, on_conflict="replace")
        assert fetch(clean_db, "SELECT args, tags, meta, run_at - now() <= interval '5 s' "
                               "FROM pgqueue.jobs") == [({"v": 3}, [], {}, True)]


def test_a_first_debounced_job_waits_its_debounce(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        job_id = pgqueue.enqueue(conn, "t", unique_key="d", debounce=45)
        assert scalar(clean_db, "SELECT run_at - created_at FROM pgqueue.jobs WHERE id = %s",
                      [job_id]) == timedelta(seconds=45)


def test_debounce_pushes_a_job_that_a_plain_enqueue_made(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        plain = pgqueue.enqueue(conn, "t", {"v": 1}, unique_key="d")
        assert pgqueue.enqueue(conn, "t", {"v": 2}, unique_key="d", debounce=30,
                               on_conflict="replace") == plain
    assert fetch(clean_db, "SELECT args, run_at > now() + interval '29 s' FROM pgqueue.jobs"
                 ) == [({"v": 2}, True)]


def test_a_burst_of_debounced_enqueues_runs_once_after_the_burst(clean_db: str) -> None:
    registry = pgqueue.Registry()
    seen: list[int] = []

    @registry.task(name="debounced")
    def debounced(v: int) -> None:
        seen.append(v)

    with running_worker(clean_db, registry) as w, \
            psycopg.connect(clean_db, autocommit=True) as conn:
        # 5 s: far longer than the gap between two calls, even on a loaded machine.
        ids = {pgqueue.enqueue(conn, "debounced", {"v": v}, unique_key="burst", debounce=5.0,
                               on_conflict="replace") for v in range(20)}
        assert not w.finished()
        wait_until(w.finished, timeout=60, message="the debounced job to run")
    assert len(ids) == 1 and seen == [19]
    assert len(jobs_with_key(clean_db, "burst")) == 1


def test_debounce_while_the_job_runs_enqueues_a_new_one(clean_db: str) -> None:
    registry = pgqueue.Registry()
    started, release = threading.Event(), threading.Event()

    @registry.task(name="slow")
    def slow(v: int) -> None:
        started.set()
        release.wait(60)

    with running_worker(clean_db, registry) as w, \
            psycopg.connect(clean_db, autocommit=True) as conn:
        running = pgqueue.enqueue(conn, "slow", {"v": 1}, unique_key="d", debounce=0.05)
        assert started.wait(60), "the first job started"
        pending = pgqueue.enqueue(conn, "slow", {"v": 2}, unique_key="d", debounce=600)
        assert pending != running
        # The running job gave up its key; the new one holds it and is pushed by the next.
        assert fetch(clean_db, "SELECT id, state::text, unique_key FROM pgqueue.jobs "
                               "ORDER BY id") == [(running, "running", None),
                                                  (pending, "queued", "d")]
        assert pgqueue.enqueue(conn, "slow", {"v": 3}, unique_key="d", debounce=600) == pending
        release.set()
        wait_until(lambda: w.finished("succeeded"), timeout=60, message="the first to end")
    assert fetch(clean_db, "SELECT id, unique_key FROM pgqueue.finished_jobs") == [
        (running, None)]


# --- bad input --------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"unique_for": 60}, "unique_for needs a unique_key"),
    ({"debounce": 60}, "debounce needs a unique_key"),
    ({"unique_key": "k", "unique_for": 60, "debounce": 60}, "give unique_for or debounce"),
    ({"unique_key": "k", "debounce": 60, "delay": 5}, "give no run_at or delay with it"),
    ({"unique_key": "k", "on_conflict": "replace"}, "on_conflict='replace' applies to debounced"),
    ({"unique_key": "k", "unique_for": 60, "on_conflict": "replace"}, "applies to debounced"),
    ({"unique_key": "k", "debounce": 60, "on_conflict": "update"},
     "on_conflict must be 'keep' or 'replace', got 'update'"),
    ({"unique_key": "k", "unique_for": 0}, "unique_for must be more than 0 seconds"),
    ({"unique_key": "k", "debounce": timedelta(0)}, "debounce must be more than 0 seconds"),
    ({"unique_key": "k", "unique_for": -1}, "unique_for must be between 0 and 100 years"),
    ({"unique_key": "k", "debounce": "30"}, "debounce must be a timedelta or a number"),
    ({"unique_key": "k", "unique_for": True}, "unique_for must be a timedelta or a number"),
])
def test_bad_key_modes_raise_before_anything_is_sent(conn: Conn, options: dict[str, Any],
                                                     message: str) -> None:
    before = pgqueue.enqueue(conn, "t", unique_key="k", debounce=60)
    pushed = run_at_of_conn(conn, before)
    with pytest.raises(pgqueue.InvalidJobError, match=message.replace("(", r"\(")):
        pgqueue.enqueue(conn, "t", **options)
    with pytest.raises(pgqueue.InvalidJobError, match=r"^jobs\[0\]: "):
        pgqueue.enqueue_many(conn, [{"task": "t", **options}])  # type: ignore[typeddict-item]
    conn.commit()  # still usable
    assert fetch(conn.info.dsn, "SELECT id, run_at FROM pgqueue.jobs") == [(before, pushed)]


def run_at_of_conn(conn: Conn, job_id: int) -> Any:
    row = conn.execute("SELECT run_at FROM pgqueue.jobs WHERE id = %s", [job_id]).fetchone()
    return row[0] if row else None


def test_a_chained_job_cannot_be_throttled_or_debounced(conn: Conn) -> None:
    with pytest.raises(pgqueue.InvalidJobError, match="cannot have a unique_key"):
        pgqueue.chain(conn, [{"task": "a"}, {"task": "b", "unique_key": "k", "debounce": 5}])
    assert run_at_of_conn(conn, 1) is None


# --- enqueue_many -----------------------------------------------------------------


def test_enqueue_many_throttles_and_debounces_in_input_order(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        done = pgqueue.enqueue(conn, "t", unique_key="thr")
        finish(conn, done)
        ids = pgqueue.enqueue_many(conn, [
            {"task": "t", "args": {"n": 0}},
            {"task": "t", "unique_key": "thr", "unique_for": 600},      # history holds it
            {"task": "t", "args": {"n": 2}, "unique_key": "deb", "debounce": 30},
            {"task": "t", "unique_key": "plain", "tags": ["p"]},
            {"task": "t", "args": {"n": 4}, "unique_key": "deb", "debounce": 60,
             "on_conflict": "replace"},
            {"task": "t", "unique_key": "thr2", "unique_for": 600, "meta": {"m": 5}},
        ])
    assert ids[1] == done and ids[4] == ids[2] and len(set(ids)) == 5
    rows = {r[0]: r[1:] for r in fetch(
        clean_db, "SELECT id, args, tags, meta, run_at - now() > interval '59 s' "
                  "FROM pgqueue.jobs")}
    assert rows[ids[0]] == ({"n": 0}, [], {}, False)
    assert rows[ids[2]] == ({"n": 4}, [], {}, True)
    assert rows[ids[3]] == ({}, ["p"], {}, False)
    assert rows[ids[5]] == ({}, [], {"m": 5}, False)


def test_enqueue_many_with_keyed_jobs_is_refused_whole_by_a_full_queue(conn: Conn) -> None:
    pgqueue.set_max_depth(conn, "small", 2)
    conn.commit()
    with pytest.raises(pgqueue.QueueFullError):
        pgqueue.enqueue_many(conn, [
            {"task": "t", "queue": "small"},
            {"task": "t", "queue": "small", "unique_key": "a", "debounce": 30},
            {"task": "t", "queue": "small", "unique_key": "b", "unique_for": 30},
        ])
    assert pgqueue.enqueue(conn, "t", queue="small") > 0  # the transaction goes on
    conn.commit()
    assert scalar(conn.info.dsn, "SELECT count(*) FROM pgqueue.jobs") == 1


# --- the SQL function, the CLI, the API -------------------------------------------


def test_sql_function_throttles_and_debounces(conn: Conn) -> None:
    def call(sql: str) -> int:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])

    first = call("SELECT pgqueue.enqueue('t', unique_key => 'k', unique_for_seconds => 600)")
    finish(conn, first)
    assert call("SELECT pgqueue.enqueue('t', unique_key => 'k', unique_for_seconds => 600)") \
        == first
    deb = call("SELECT pgqueue.enqueue('t', '{\"v\": 1}', unique_key => 'd', "
               "debounce_seconds => 30)")
    assert call("SELECT pgqueue.enqueue('t', '{\"v\": 2}', unique_key => 'd', "
                "debounce_seconds => 30, on_conflict => 'replace', tags => '{x}')") == deb
    assert conn.execute("SELECT args, tags FROM pgqueue.jobs WHERE id = %s",
                        [deb]).fetchone() == ({"v": 2}, ["x"])


@pytest.mark.parametrize(("call", "message"), [
    ("unique_for_seconds => 60", "need a unique_key"),
    ("unique_key => 'k', unique_for_seconds => 60, debounce_seconds => 60", "not both"),
    ("unique_key => 'k', unique_for_seconds => 0", "must be > 0"),
    ("unique_key => 'k', debounce_seconds => 5, delay_seconds => 1", "give no run_at"),
    ("unique_key => 'k', on_conflict => 'replace'", "needs debounce_seconds"),
    ("unique_key => 'k', debounce_seconds => 5, on_conflict => 'merge'", "'keep' or 'replace'"),
])
def test_sql_function_refuses_bad_key_modes(conn: Conn, call: str, message: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        conn.execute(f"SELECT pgqueue.enqueue('t', {call})")


def test_cli_enqueue_throttles_and_debounces(clean_db: str) -> None:
    def enqueue(*args: str) -> int:
        result = cli_runner().invoke(main, ["enqueue", "t", *args, "--dsn", clean_db])
        assert result.exit_code == 0, result.output
        return int(result.stdout.split()[0])

    first = enqueue("--unique-key", "k", "--unique-for", "600")
    with psycopg.connect(clean_db, autocommit=True) as conn:
        finish(conn, first)
    assert enqueue("--unique-key", "k", "--unique-for", "600") == first
    deb = enqueue("--unique-key", "d", "--debounce", "30", "--args", '{"v": 1}')
    assert enqueue("--unique-key", "d", "--debounce", "30", "--args", '{"v": 2}',
                   "--on-conflict", "replace") == deb
    assert fetch(clean_db, "SELECT args FROM pgqueue.jobs") == [({"v": 2},)]
    bad = cli_runner().invoke(main, ["enqueue", "t", "--debounce", "30", "--dsn", clean_db])
    assert bad.exit_code == 1 and "debounce needs a unique_key" in bad.output


def test_api_enqueue_throttles_and_debounces(dashboards: Callable[..., int],
                                             clean_db: str) -> None:
    base = f"http://127.0.0.1:{dashboards()}"

    def post(body: dict[str, Any]) -> tuple[int, Any]:
        return post_json(f"{base}/api/jobs", body)

    status, first = post({"task": "t", "unique_key": "k", "unique_for": 600})
    assert status == 201
    with psycopg.connect(clean_db, autocommit=True) as conn:
        finish(conn, first["id"])
    assert post({"task": "t", "unique_key": "k", "unique_for": 600}) == (201, first)
    status, deb = post({"task": "t", "args": {"v": 1}, "unique_key": "d", "debounce": 30})
    assert post({"task": "t", "args": {"v": 2}, "unique_key": "d", "debounce": 30,
                 "on_conflict": "replace"}) == (201, deb)
    status, body = post({"task": "t", "debounce": 30})
    assert status == 400 and "debounce needs a unique_key" in body["error"]
    assert fetch(clean_db, "SELECT args FROM pgqueue.jobs") == [({"v": 2},)]


def test_async_enqueues_throttle_and_debounce_like_the_sync_ones(clean_db: str) -> None:
    async def produce() -> list[int]:
        async with await psycopg.AsyncConnection.connect(clean_db, autocommit=True) as aconn:
            first = await pgqueue.enqueue_async(aconn, "t", unique_key="a", unique_for=600)
            await aconn.execute(FINISH, {"id": first})
            held = await pgqueue.enqueue_async(aconn, "t", unique_key="a", unique_for=600)
            many = await pgqueue.enqueue_many_async(aconn, [
                {"task": "t", "args": {"v": 1}, "unique_key": "d", "debounce": 30},
                {"task": "t", "args": {"v": 2}, "unique_key": "d", "debounce": 30,
                 "on_conflict": "replace"},
                {"task": "t", "unique_key": "a", "unique_for": 600}])
            return [first, held, *many]

    first, held, deb1, deb2, thr = asyncio.run(produce())
    assert held == thr == first and deb1 == deb2
    assert fetch(clean_db, "SELECT id, args FROM pgqueue.jobs") == [(deb1, {"v": 2})]
