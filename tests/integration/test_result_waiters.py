"""Finished jobs are announced on pgqueue_finished only while a result waiter waits.

Every listening backend is woken by every notification, so outcome statements
send pgqueue_finished only while pgqueue.result_waiters has a row (migration
0022): wait_for_result adds its session's row for as long as it waits, and the
next waiter to begin forgets the rows of sessions that are gone.
"""

from __future__ import annotations

import psycopg

import pgqueue
from tests.support import running_worker, scalar, wait_until


def announced(listener: psycopg.Connection[tuple[object, ...]], job: int,
              timeout: float) -> bool:
    """Whether a pgqueue_finished notification naming ``job`` arrives within ``timeout``."""
    return any(n.channel == "pgqueue_finished" and str(job) in n.payload.split(",")
               for n in listener.notifies(timeout=timeout))


def waiters(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [pid for (pid,) in conn.execute(
            "SELECT pid FROM pgqueue.result_waiters ORDER BY pid").fetchall()]


def finish(dsn: str, conn: psycopg.Connection[tuple[object, ...]], done: int) -> int:
    job = pgqueue.enqueue(conn, "rw.noop", queue="rw")
    wait_until(lambda: scalar(dsn, "SELECT count(*) FROM pgqueue.finished_jobs") == done,
               message=f"job {job} to finish")
    return job


def test_outcomes_are_announced_only_while_a_result_waiter_waits(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    tasks.task(lambda: None, name="rw.noop", queue="rw")
    with psycopg.connect(clean_db, autocommit=True) as listener, \
            psycopg.connect(clean_db, autocommit=True) as waiter, \
            psycopg.connect(clean_db, autocommit=True) as conn, \
            running_worker(clean_db, tasks):
        listener.execute("LISTEN pgqueue_finished")  # listening alone is not waiting
        quiet = finish(clean_db, conn, 1)
        # Its outcome has committed: a notification would be queued already.
        assert not announced(listener, quiet, timeout=1.0)

        waiter.execute("SELECT pgqueue.result_wait_begin()")
        assert waiters(clean_db) == [waiter.info.backend_pid]
        loud = finish(clean_db, conn, 2)
        assert announced(listener, loud, timeout=30)

        waiter.execute("SELECT pgqueue.result_wait_end()")
        assert waiters(clean_db) == []
        quiet_again = finish(clean_db, conn, 3)
        assert not announced(listener, quiet_again, timeout=1.0)

        # wait_for_result marks its session for as long as it waits, and no longer,
        # whether it returns a result or times out.
        assert pgqueue.wait_for_result(waiter, quiet_again, timeout=5) is None
        later = pgqueue.enqueue(conn, "rw.noop", queue="rw", delay=3600)
        try:
            pgqueue.wait_for_result(waiter, later, timeout=0.2)
        except TimeoutError:
            pass
        assert waiters(clean_db) == []


def test_a_waiter_that_died_is_forgotten_by_the_next(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as admin:
        dead = psycopg.connect(clean_db, autocommit=True)
        dead.execute("SELECT pgqueue.result_wait_begin()")
        pid = dead.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pg_stat_activity "
                                  "WHERE pid = %s", [pid]) == 0,
                   message="the waiter's backend to end")
        dead.close()
        assert waiters(clean_db) == [pid]  # it could not say goodbye
        with psycopg.connect(clean_db, autocommit=True) as alive:
            alive.execute("SELECT pgqueue.result_wait_begin()")
            alive.execute("SELECT pgqueue.result_wait_begin()")  # twice: still one row
            assert waiters(clean_db) == [alive.info.backend_pid]
