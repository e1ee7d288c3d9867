"""Dependencies (depends_on) and chains, end to end with real workers.

A job with dependencies waits `blocked` (queued, outside the claim index) until
every dependency has succeeded; if one ends failed or cancelled, it ends
cancelled naming that dependency, and so do the jobs that depend on it. The
race between enqueueing a dependent and finishing its dependency, and a worker
dying between writing an outcome and settling the dependents, are both covered.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from pgqueue._sql import query
from tests.integration.test_roles import Roles, roles  # noqa: F401  (fixture)
from tests.support import fetch, running_worker, scalar, wait_until


def enqueue(dsn: str, task: str, args: dict[str, Any] | None = None, **kw: Any) -> int:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue(conn, task, args, **kw)


def job(dsn: str, job_id: int) -> dict[str, Any]:
    rows = fetch(dsn, "SELECT state::text, last_error, started_at, finished_at "
                      "FROM pgqueue.all_jobs WHERE id = %s", [job_id])
    assert len(rows) == 1, (job_id, rows)
    state, last_error, started_at, finished_at = rows[0]
    return {"state": state, "last_error": last_error, "started_at": started_at,
            "finished_at": finished_at}


def is_blocked(dsn: str, job_id: int) -> bool:
    return bool(scalar(dsn, "SELECT blocked IS TRUE FROM pgqueue.jobs WHERE id = %s", [job_id]))


def stats(dsn: str, queue: str = "default") -> tuple[int, int, int]:
    """(ready, scheduled, blocked) of a queue, from pgqueue.queue_stats."""
    rows = fetch(dsn, "SELECT ready, scheduled, blocked FROM pgqueue.queue_stats "
                      "WHERE queue = %s", [queue])
    return rows[0] if rows else (0, 0, 0)  # type: ignore[return-value]


def claim(dsn: str, tasks: list[str], worker_id: str, queue: str = "default") -> list[Any]:
    return fetch(dsn, query("job_claim"), {
        "queues": [queue], "slots": [100], "tasks": tasks, "limit": 100,
        "worker_id": worker_id, "key_tasks": [], "key_caps": [],
        "bases": None, "strides": None, "fair": None, "cursors": None, "async_commit": False})


def complete_without_settling(dsn: str, job_id: int, token: int, outcome: str,
                              worker_id: str) -> list[Any]:
    """Write a final outcome as the worker's completer does, without job_after_finish:
    what a worker killed between the two statements leaves behind."""
    error = None if outcome == "succeeded" else '{"message": "boom", "kind": "error"}'
    return fetch(dsn, query("job_complete_many"), {
        "ids": [job_id], "tokens": [token], "outcomes": [outcome], "delays": [None],
        "errors": [error], "results": [None], "max_snoozes": [None], "progress": [None],
        "meta": [None], "worker_id": worker_id})


def recording_registry() -> tuple[pgqueue.Registry, list[int]]:
    """Tasks 'ok' (succeeds), 'fail' (PermanentError) and 'slow' (0.2 s); the ids they ran."""
    tasks = pgqueue.Registry()
    ran: list[int] = []

    @tasks.task(name="ok")
    def ok(ctx: pgqueue.JobContext) -> None:
        ran.append(ctx.id)

    @tasks.task(name="fail")
    def fail(ctx: pgqueue.JobContext) -> None:
        ran.append(ctx.id)
        raise pgqueue.PermanentError("dependency broke")

    @tasks.task(name="slow")
    async def slow(ctx: pgqueue.JobContext, step: int = 0) -> None:
        ran.append(ctx.id)
        await asyncio.sleep(0.2)

    return tasks, ran


# --- chains -------------------------------------------------------------------------------


def test_chain_runs_in_order_woken_without_polling(clean_db: str) -> None:
    tasks, ran = recording_registry()
    with psycopg.connect(clean_db) as conn:
        a, b, c = pgqueue.chain(conn, [{"task": "slow", "args": {"step": 1}},
                                       {"task": "slow", "args": {"step": 2}},
                                       {"task": "slow", "args": {"step": 3}}])
    assert a < b < c
    assert fetch(clean_db, "SELECT id, depends_on, blocked FROM pgqueue.jobs ORDER BY id") == [
        (a, None, None), (b, [a], True), (c, [b], True)]
    assert stats(clean_db) == (1, 0, 2)
    began = time.monotonic()
    # Polling every 60 s: each next step is woken by the NOTIFY of its settling.
    with running_worker(clean_db, tasks, concurrency=10, poll_interval=60) as w:
        wait_until(lambda: len(w.finished("succeeded")) == 3, timeout=120)
    # Well before the first 60 s poll could have started step 2.
    assert time.monotonic() - began < 50
    assert ran == [a, b, c]
    steps = [job(clean_db, i) for i in (a, b, c)]
    assert all(s["state"] == "succeeded" for s in steps)
    assert steps[0]["finished_at"] <= steps[1]["started_at"]
    assert steps[1]["finished_at"] <= steps[2]["started_at"]


def test_chain_async_and_extra_dependencies(clean_db: str) -> None:
    first = enqueue(clean_db, "ok", delay=3600)

    async def make() -> list[int]:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            return await pgqueue.chain_async(aconn, [
                {"task": "ok"}, {"task": "ok", "depends_on": [first]}, {"task": "ok"}])

    x, y, z = asyncio.run(make())
    assert fetch(clean_db, "SELECT id, depends_on FROM pgqueue.jobs WHERE id <> %s ORDER BY id",
                 [first]) == [(x, None), (y, sorted([first, x])), (z, [y])]
    with psycopg.connect(clean_db) as conn:
        assert pgqueue.chain(conn, []) == []
        assert len(pgqueue.chain(conn, [{"task": "ok"}])) == 1


def test_chain_validates_every_spec_first(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        with pytest.raises(pgqueue.InvalidJobError, match=r"jobs\[1\]: priority"):
            pgqueue.chain(conn, [{"task": "ok"}, {"task": "ok", "priority": 5000}])
        with pytest.raises(pgqueue.InvalidJobError, match=r"jobs\[0\]: a chained job cannot "
                                                          "have a unique_key"):
            pgqueue.chain(conn, [{"task": "ok", "unique_key": "k"}, {"task": "ok"}])
        with pytest.raises(pgqueue.InvalidJobError, match="does not exist"):
            pgqueue.chain(conn, [{"task": "ok", "depends_on": [10**12]}, {"task": "ok"}])
        with pytest.raises(TypeError, match=r"use pgqueue\.chain for a sync"):
            asyncio.run(pgqueue.chain_async(conn, [{"task": "ok"}]))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"use pgqueue\.chain_async"):
            pgqueue.chain(object(), [{"task": "ok"}])  # type: ignore[arg-type]
        # Still usable: nothing was sent that failed.
        pgqueue.enqueue(conn, "ok")
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 1


# --- failure and cancellation cascade ----------------------------------------------------------


def test_failed_dependency_cancels_its_dependents_transitively(clean_db: str) -> None:
    tasks, ran = recording_registry()
    with psycopg.connect(clean_db) as conn:
        other = pgqueue.enqueue(conn, "ok")
        a, b, c = pgqueue.chain(conn, [{"task": "fail"}, {"task": "ok"}, {"task": "ok"}])
        d = pgqueue.enqueue(conn, "ok", depends_on=[c, other])
        e = pgqueue.enqueue(conn, "ok", depends_on=[other])
    with running_worker(clean_db, tasks) as w:
        wait_until(lambda: len(w.finished()) == 3, timeout=60)  # other, a, e
        wait_until(lambda: job(clean_db, d)["state"] == "cancelled", timeout=60)
    assert sorted(ran) == sorted([other, a, e])
    assert job(clean_db, a)["state"] == "failed"
    assert job(clean_db, b)["last_error"] == f"dependency {a} ended failed"
    assert job(clean_db, c)["last_error"] == f"dependency {b} ended cancelled"
    assert job(clean_db, d)["last_error"] == f"dependency {c} ended cancelled"
    assert [job(clean_db, i)["state"] for i in (b, c, d, e)] == [
        "cancelled", "cancelled", "cancelled", "succeeded"]
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_cancel_of_a_queued_dependency_cascades(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        a, b, c = pgqueue.chain(conn, [{"task": "ok", "delay": 3600}, {"task": "ok"},
                                       {"task": "ok"}])
    with psycopg.connect(clean_db) as conn:
        # A blocked job can be cancelled too; here the head of the chain.
        assert pgqueue.cancel(conn, a, reason="not needed") is pgqueue.CancelResult.CANCELLED
    assert job(clean_db, a)["last_error"] == "not needed"
    assert job(clean_db, b)["last_error"] == f"dependency {a} ended cancelled"
    assert job(clean_db, c)["last_error"] == f"dependency {b} ended cancelled"
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_cancel_of_a_blocked_job_leaves_its_dependency_alone(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        a, b, c = pgqueue.chain(conn, [{"task": "ok", "delay": 3600}, {"task": "ok"},
                                       {"task": "ok"}])
        assert pgqueue.cancel(conn, b) is pgqueue.CancelResult.CANCELLED
    assert job(clean_db, a)["state"] == "queued"
    assert job(clean_db, c)["last_error"] == f"dependency {b} ended cancelled"


def test_expired_dependency_cascades_through_the_leader(clean_db: str) -> None:
    tasks, ran = recording_registry()
    with psycopg.connect(clean_db) as conn:
        a = pgqueue.enqueue(conn, "ok", delay=1.5, ttl=0.5)  # expires before it is due
        b = pgqueue.enqueue(conn, "ok", depends_on=[a])
    with running_worker(clean_db, tasks):
        wait_until(lambda: job(clean_db, b)["state"] == "cancelled", timeout=60)
    assert job(clean_db, a)["last_error"] == "expired"
    assert job(clean_db, b)["last_error"] == f"dependency {a} ended cancelled"
    assert ran == []


# --- one transaction --------------------------------------------------------------------------


def test_dependencies_in_the_same_transaction_and_rollback(clean_db: str) -> None:
    tasks, ran = recording_registry()
    with psycopg.connect(clean_db) as conn:
        a = pgqueue.enqueue(conn, "ok")
        b = pgqueue.enqueue(conn, "ok", depends_on=[a])
        c, d = pgqueue.enqueue_many(conn, [{"task": "ok", "depends_on": [a, b]},
                                           {"task": "ok", "depends_on": [b]}])
        conn.rollback()
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.all_jobs") == 0
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.queues") == 0

    with psycopg.connect(clean_db) as conn:
        a = pgqueue.enqueue(conn, "ok")
        b = pgqueue.enqueue(conn, "ok", depends_on=[a])
        c, d = pgqueue.enqueue_many(conn, [{"task": "ok", "depends_on": [a, b]},
                                           {"task": "ok", "depends_on": [b], "unique_key": "u"}])
    with running_worker(clean_db, tasks) as w:
        wait_until(lambda: len(w.finished("succeeded")) == 4, timeout=60)
    assert ran[:2] == [a, b] and sorted(ran[2:]) == [c, d]


def test_depends_on_a_succeeded_job_runs_and_on_a_failed_one_is_cancelled(
        clean_db: str) -> None:
    tasks, ran = recording_registry()
    good = enqueue(clean_db, "ok")
    bad = enqueue(clean_db, "fail")
    with running_worker(clean_db, tasks) as w:
        wait_until(lambda: len(w.finished()) == 2, timeout=60)
        with psycopg.connect(clean_db) as conn:
            after_good = pgqueue.enqueue(conn, "ok", depends_on=[good])
            after_bad = pgqueue.enqueue(conn, "ok", depends_on=[good, bad])
            # Settled in the enqueueing transaction itself.
            assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0
        assert job(clean_db, after_bad) == {**job(clean_db, after_bad), "state": "cancelled",
                                            "last_error": f"dependency {bad} ended failed"}
        wait_until(lambda: job(clean_db, after_good)["state"] == "succeeded", timeout=60)
    assert after_bad not in ran


def test_missing_dependency_raises_and_the_transaction_stays_usable(clean_db: str) -> None:
    with psycopg.connect(clean_db) as conn:
        first = pgqueue.enqueue(conn, "ok")
        for call in (
            lambda: pgqueue.enqueue(conn, "ok", depends_on=[first, 10**12]),
            lambda: pgqueue.enqueue_many(conn, [{"task": "ok"},
                                                {"task": "ok", "depends_on": [10**12]}]),
            lambda: pgqueue.enqueue_many(conn, [{"task": "ok", "unique_key": "k",
                                                 "depends_on": [10**12]}]),
            lambda: pgqueue.chain(conn, [{"task": "ok", "depends_on": [10**12]}]),
        ):
            with pytest.raises(pgqueue.InvalidJobError,
                               match=f"depends_on names job {10**12}, which does not exist"):
                call()
        last = pgqueue.enqueue(conn, "ok", depends_on=[first])
    assert fetch(clean_db, "SELECT id FROM pgqueue.jobs ORDER BY id") == [(first,), (last,)]


def test_missing_dependency_async(clean_db: str) -> None:
    async def run() -> int:
        async with await psycopg.AsyncConnection.connect(clean_db) as aconn:
            with pytest.raises(pgqueue.InvalidJobError, match="does not exist"):
                await pgqueue.enqueue_async(aconn, "ok", depends_on=[10**12])
            with pytest.raises(pgqueue.InvalidJobError, match="does not exist"):
                await pgqueue.enqueue_many_async(aconn, [{"task": "ok",
                                                          "depends_on": [10**12]}])
            return await pgqueue.enqueue_async(aconn, "ok")

    only = asyncio.run(run())
    assert fetch(clean_db, "SELECT id FROM pgqueue.jobs") == [(only,)]


@pytest.mark.parametrize(("depends_on", "message"), [
    (5, "depends_on must be a list of job ids, got int"),
    ("12", "depends_on must be a list of job ids, got str"),
    (b"12", "depends_on must be a list of job ids, got bytes"),
    ({1: 2}, "depends_on must be a list of job ids, got dict"),
    (3.0, "depends_on must be a list of job ids, got float"),
    ([0], "depends_on holds 0; job ids are positive integers"),
    ([-4], "depends_on holds -4; job ids are positive integers"),
    ([True], "depends_on holds True; job ids are positive integers"),
    ([1.0], "depends_on holds 1.0; job ids are positive integers"),
    (["7"], "depends_on holds '7'; job ids are positive integers"),
    ([None], "depends_on holds None; job ids are positive integers"),
    ([2**63], "job ids are positive integers"),
    (list(range(1, 1002)), "depends_on names 1001 jobs; at most 1000 are allowed"),
])
def test_bad_depends_on_is_refused_before_anything_runs(
        clean_db: str, depends_on: Any, message: str) -> None:
    with psycopg.connect(clean_db) as conn:
        with pytest.raises(pgqueue.InvalidJobError, match=message.replace(".", r"\.")):
            pgqueue.enqueue(conn, "ok", depends_on=depends_on)
        with pytest.raises(pgqueue.InvalidJobError, match=r"jobs\[0\]: "):
            pgqueue.enqueue_many(conn, [{"task": "ok", "depends_on": depends_on}])
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_empty_and_repeated_dependencies(clean_db: str) -> None:
    a = enqueue(clean_db, "ok", delay=3600)
    with psycopg.connect(clean_db) as conn:
        free = pgqueue.enqueue(conn, "ok", depends_on=[])
        twice = pgqueue.enqueue(conn, "ok", depends_on=iter([a, a]))
    assert fetch(clean_db, "SELECT id, depends_on, blocked FROM pgqueue.jobs "
                           "WHERE id IN (%s, %s) ORDER BY id", [free, twice]) == [
        (free, None, None), (twice, [a], True)]


def test_sql_function_takes_depends_on(clean_db: str) -> None:
    a = enqueue(clean_db, "ok", delay=3600)
    with psycopg.connect(clean_db) as conn:
        b = conn.execute("SELECT pgqueue.enqueue('ok', depends_on => ARRAY[%s, %s]::bigint[])",
                         [a, a]).fetchone()[0]  # type: ignore[index]
    assert is_blocked(clean_db, b)
    with psycopg.connect(clean_db) as conn, pytest.raises(psycopg.errors.InvalidParameterValue,
                                                          match="does not exist"):
        conn.execute("SELECT pgqueue.enqueue('ok', depends_on => ARRAY[%s]::bigint[])", [10**12])
    with psycopg.connect(clean_db) as conn, pytest.raises(psycopg.errors.InvalidParameterValue,
                                                          match="holds NULL"):
        conn.execute("SELECT pgqueue.enqueue('ok', depends_on => ARRAY[%s, NULL]::bigint[])",
                     [a])


# --- blocked jobs are counted and never claimed --------------------------------------------------


def test_blocked_jobs_are_counted_and_never_claimed(clean_db: str) -> None:
    a = enqueue(clean_db, "ok", delay=3600)
    with psycopg.connect(clean_db) as conn:
        blocked = pgqueue.enqueue_many(conn, [{"task": "ok", "depends_on": [a]}] * 5)
    assert stats(clean_db) == (0, 1, 5)
    assert claim(clean_db, ["ok"], str(uuid.uuid4())) == []
    assert scalar(clean_db, "SELECT pgqueue.next_claim_in('{default}', '{ok}') > 3000")
    fetch(clean_db, "UPDATE pgqueue.jobs SET run_at = now() WHERE id = %s RETURNING id", [a])
    claimed = claim(clean_db, ["ok"], str(uuid.uuid4()))
    assert [row[0] for row in claimed] == [a]
    assert all(is_blocked(clean_db, i) for i in blocked)
    assert scalar(clean_db, "SELECT has_dependents FROM pgqueue.jobs WHERE id = %s", [a])


# --- the race: a dependent enqueued while its dependency finishes --------------------------------


def test_dependent_enqueued_while_its_dependency_finishes(clean_db: str) -> None:
    """Every dependent ends run (dependency succeeded) or cancelled (failed), none stuck.

    Another (made-up) worker holds the leader's lease for the whole run, so the
    leader's sweep never runs here: every dependent was settled on the direct
    path, not by the safety net.
    """
    tasks = pgqueue.Registry()
    ran: dict[int, datetime] = {}
    rounds = 300

    @tasks.task(name="dep")
    def dep(fail: bool, pause: float) -> None:
        time.sleep(pause)
        if fail:
            raise pgqueue.PermanentError("dependency failed")

    @tasks.task(name="after")
    def after(ctx: pgqueue.JobContext) -> None:
        ran[ctx.id] = datetime.now().astimezone()

    rng = random.Random(7)
    pairs: list[tuple[int, int, bool]] = []
    lock = threading.Lock()

    def one_round(i: int) -> None:
        fail = i % 3 == 0
        wait = rng.random() * 0.006
        hold = rng.random() * 0.003
        with psycopg.connect(clean_db, autocommit=True) as conn:
            d = pgqueue.enqueue(conn, "dep", {"fail": fail, "pause": rng.random() * 0.004})
        time.sleep(wait)  # lands before, during or after the dependency's finish
        with psycopg.connect(clean_db) as conn:
            a = pgqueue.enqueue(conn, "after", depends_on=[d])
            time.sleep(hold)  # an open transaction holds the dependency
        with lock:
            pairs.append((d, a, fail))

    fetch(clean_db, "INSERT INTO pgqueue.leader (name, worker_id, expires_at) "
                    "VALUES ('maintenance', gen_random_uuid(), now() + interval '1 day') "
                    "RETURNING worker_id")
    with running_worker(clean_db, tasks, concurrency=20, heartbeat_interval=5,
                        stall_timeout=120) as w:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one_round, range(rounds)))
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0,
                   timeout=300, message="every job to finish")
        assert not w.of(events.ServiceError)
        assert not w.of(events.LeaderChanged)  # it never led, so it never swept
    assert len(pairs) == rounds
    rows = {r[0]: r[1:] for r in fetch(
        clean_db, "SELECT id, state::text, last_error, started_at, finished_at, created_at "
                  "FROM pgqueue.finished_jobs")}
    # The race was really run: many dependents' transactions began before their
    # dependency finished (created_at is the enqueueing transaction's start).
    overlapping = [fail for d, a, fail in pairs if rows[a][4] < rows[d][3]]
    assert overlapping.count(True) >= 20 and overlapping.count(False) >= 20, overlapping
    for d, a, fail in pairs:
        if fail:
            assert rows[d][0] == "failed"
            assert rows[a][:2] == ("cancelled", f"dependency {d} ended failed"), (d, a)
            assert a not in ran
        else:
            assert rows[d][0] == "succeeded"
            assert rows[a][0] == "succeeded", (d, a, rows[a])
            assert rows[a][2] >= rows[d][3]  # started after the dependency finished
            assert a in ran


# --- the crash gap: outcome written, dependents not settled ---------------------------------------


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_leader_sweep_settles_what_a_killed_worker_left(clean_db: str, outcome: str) -> None:
    a = enqueue(clean_db, "ok")
    b = enqueue(clean_db, "ok", depends_on=[a])
    ghost = str(uuid.uuid4())
    (claimed,) = claim(clean_db, ["ok"], ghost)
    assert claimed[0] == a
    assert complete_without_settling(clean_db, a, claimed[12], outcome, ghost) == [
        (a, True, None, None)]
    assert job(clean_db, a)["state"] == outcome
    assert is_blocked(clean_db, b)  # nobody settled it: the worker "died" here
    assert stats(clean_db) == (0, 0, 1)

    if outcome == "failed":
        fetch(clean_db, query("job_settle_pending"))  # what the leader runs every interval
        assert job(clean_db, b) == {**job(clean_db, b), "state": "cancelled",
                                    "last_error": f"dependency {a} ended failed"}
        return
    tasks, ran = recording_registry()
    with running_worker(clean_db, tasks) as w:  # its leader sweeps at once
        wait_until(lambda: w.finished("succeeded"), timeout=60)
    assert ran == [b]


def test_pruned_dependency_counts_as_succeeded(clean_db: str) -> None:
    a = enqueue(clean_db, "ok")
    b = enqueue(clean_db, "ok", depends_on=[a])
    ghost = str(uuid.uuid4())
    (claimed,) = claim(clean_db, ["ok"], ghost)
    complete_without_settling(clean_db, a, claimed[12], "succeeded", ghost)
    with psycopg.connect(clean_db) as conn:
        assert pgqueue.prune(conn, 0) >= 1  # type: ignore[arg-type]
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.all_jobs WHERE id = %s", [a]) == 0
    fetch(clean_db, query("job_settle_pending"))
    assert not is_blocked(clean_db, b) and stats(clean_db) == (1, 0, 0)


# --- least privilege ---------------------------------------------------------------------------


def test_producer_role_enqueues_with_depends_on(roles: Roles) -> None:  # noqa: F811
    with psycopg.connect(roles.dsn, autocommit=True) as conn:
        done = pgqueue.enqueue(conn, "app.step", delay=3600)
        assert pgqueue.cancel(conn, done) is pgqueue.CancelResult.CANCELLED
        live = pgqueue.enqueue(conn, "app.step", delay=3600)
    producer = roles.as_role(roles.producer)
    with psycopg.connect(producer) as conn:
        one = pgqueue.enqueue(conn, "app.step", depends_on=[live])
        many = pgqueue.enqueue_many(conn, [{"task": "app.step", "depends_on": [one]},
                                           {"task": "app.step", "depends_on": [one],
                                            "unique_key": "step-u"}])
        chained = pgqueue.chain(conn, [{"task": "app.step", "depends_on": [live]},
                                       {"task": "app.step"}])
        by_sql = conn.execute("SELECT pgqueue.enqueue('app.step', depends_on => %s::bigint[])",
                              [[live]]).fetchone()[0]  # type: ignore[index]
        doomed = pgqueue.enqueue(conn, "app.step", depends_on=[done])
        with pytest.raises(pgqueue.InvalidJobError, match="does not exist"):
            pgqueue.enqueue(conn, "app.step", depends_on=[10**12])
        also = pgqueue.enqueue(conn, "app.step")  # the transaction is still usable
    blocked = [one, *many, *chained, by_sql]
    assert fetch(roles.dsn, "SELECT id FROM pgqueue.jobs WHERE blocked ORDER BY id") == [
        (i,) for i in sorted(blocked)]
    assert scalar(roles.dsn, "SELECT last_error FROM pgqueue.finished_jobs WHERE id = %s",
                  [doomed]) == f"dependency {done} ended cancelled"
    assert scalar(roles.dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s",
                  [also]) == "queued"
    with psycopg.connect(roles.dsn, autocommit=True) as conn:  # the cascade, as the owner
        pgqueue.cancel(conn, live)
    assert scalar(roles.dsn, "SELECT count(*) FROM pgqueue.jobs") == 1
