"""Outcomes are fenced on the claim token: (job, token) names exactly one attempt.

A fixed worker_id is reused by the next process after a restart, and the
attempt number is given back by a hand-back and reset by a retry by hand; a
stale attempt must still never write over a later one.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg

import pgqueue
from pgqueue import events
from pgqueue._sql import query
from tests.support import fetch, running_worker, scalar, wait_until


def run(dsn: str, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query(name), params)
        return cur.fetchall() if cur.description else []


def claim(dsn: str, worker_id: str) -> list[tuple[Any, ...]]:
    return run(dsn, "job_claim", {
        "queues": ["default"], "slots": [10], "tasks": ["t"], "limit": 10,
        "worker_id": worker_id, "key_tasks": [], "key_caps": [],
        "bases": None, "strides": None, "fair": None, "cursors": None, "async_commit": False})


def complete(dsn: str, job_id: int, token: int, worker_id: str,
             outcome: str = "succeeded") -> list[tuple[Any, ...]]:
    return run(dsn, "job_complete_many", {
        "ids": [job_id], "tokens": [token], "outcomes": [outcome], "delays": [None],
        "errors": [None], "results": [None], "max_snoozes": [None], "progress": [None],
        "meta": [None], "worker_id": worker_id})


def test_tokens_never_repeat_and_a_stale_token_writes_nothing(clean_db: str) -> None:
    worker_id = str(uuid.uuid4())
    with psycopg.connect(clean_db, autocommit=True) as conn:
        job_id = conn.execute("SELECT pgqueue.enqueue('t', '{}', max_attempts => 1)").fetchone()[0]
    tokens = []
    for _ in range(3):  # claimed, then handed back: the same attempt number each time
        (row,) = claim(clean_db, worker_id)
        assert row[0] == job_id and row[5] == 1
        tokens.append(row[12])
        assert run(clean_db, "job_hand_back", {"ids": [job_id], "tokens": [row[12]],
                                               "worker_id": worker_id}) == [(job_id,)]
    (row,) = claim(clean_db, worker_id)
    tokens.append(row[12])
    assert tokens == sorted(set(tokens)), "a claim token repeated"
    # Same job, same worker_id, same attempt number: only the current token writes.
    for stale in tokens[:-1]:
        assert complete(clean_db, job_id, stale, worker_id) == []
        assert run(clean_db, "job_hand_back", {"ids": [job_id], "tokens": [stale],
                                               "worker_id": worker_id}) == []
    assert scalar(clean_db, "SELECT state::text FROM pgqueue.jobs WHERE id = %s",
                  [job_id]) == "running"
    assert complete(clean_db, job_id, tokens[-1], worker_id, "failed") == [
        (job_id, False, None, None)]

    # Retried by hand: attempt 0 again, a fresh token; the old one still writes nothing.
    assert scalar(clean_db, "SELECT pgqueue.retry(%s)", [job_id]) == "retried"
    (row,) = claim(clean_db, worker_id)
    assert row[5] == 1 and row[12] > tokens[-1]
    assert complete(clean_db, job_id, tokens[-1], worker_id) == []
    assert complete(clean_db, job_id, row[12], worker_id) == [(job_id, False, None, None)]


def test_the_claim_of_older_workers_still_works_and_sets_a_token(clean_db: str) -> None:
    """pgqueue.claim keeps the 0008 result for workers of an older pgqueue running
    during a deploy; the jobs it claims get a token too."""
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.enqueue('t', '{}') FROM generate_series(1, 2)")
        rows = conn.execute("SELECT * FROM pgqueue.claim('{default}', '{5}', '{t}', 5, %s)",
                            [uuid.uuid4()]).fetchall()
        assert len(rows) == 2 and all(len(r) == 12 for r in rows)
        assert conn.execute("SELECT count(DISTINCT claim_token) FROM pgqueue.jobs "
                            "WHERE claim_token IS NOT NULL").fetchone() == (1,)


class Gates:
    """A sync handler whose n-th call waits for gate n and returns n."""

    def __init__(self, count: int) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.started = [threading.Event() for _ in range(count)]
        self.gates = [threading.Event() for _ in range(count)]

    def registry(self) -> pgqueue.Registry:
        tasks = pgqueue.Registry()

        @tasks.task(name="gated")
        def gated() -> int:
            with self.lock:
                n = self.calls
                self.calls += 1
            self.started[n].set()
            assert self.gates[n].wait(60)
            return n

        return tasks


def test_a_stale_attempt_after_a_retry_by_hand_cannot_write(clean_db: str) -> None:
    """Worker A (fixed worker_id) froze on a job; the job was reclaimed, failed, and
    retried by hand; a new process with the same worker_id runs it as attempt 1
    again. A's late outcome (same worker_id, same attempt number) is discarded."""
    fixed = str(uuid.uuid4())
    gates = Gates(2)
    tasks = gates.registry()
    with psycopg.connect(clean_db) as conn:
        job_id = pgqueue.enqueue(conn, "gated", {}, max_attempts=1)
    # Heartbeats and the reaper are slowed down: the test plays the reaper.
    slow = {"heartbeat_interval": 10.0, "stall_timeout": 60.0, "worker_id": fixed}
    # A has one slot, taken by the frozen attempt: the retried job goes to B.
    with running_worker(clean_db, tasks, concurrency=1, **slow) as a:
        assert gates.started[0].wait(30)
        run(clean_db, "job_reclaim_stalled", {"stall_seconds": 0, "limit": 100})
        assert scalar(clean_db, "SELECT state::text FROM pgqueue.finished_jobs "
                                "WHERE id = %s", [job_id]) == "failed"
        assert scalar(clean_db, "SELECT pgqueue.retry(%s)", [job_id]) == "retried"
        with running_worker(clean_db, tasks, **slow) as b:
            assert gates.started[1].wait(30)
            assert scalar(clean_db, "SELECT attempt FROM pgqueue.jobs WHERE id = %s",
                          [job_id]) == 1
            gates.gates[0].set()  # A's stale attempt ends
            wait_until(lambda: a.of(events.JobLost), message="A's outcome discarded")
            assert scalar(clean_db, "SELECT state::text FROM pgqueue.jobs WHERE id = %s",
                          [job_id]) == "running"
            gates.gates[1].set()
            wait_until(lambda: b.finished("succeeded"), message="B's outcome written")
    rows = fetch(clean_db, "SELECT state::text, attempt, result FROM pgqueue.finished_jobs "
                           "WHERE id = %s", [job_id])
    assert rows == [("succeeded", 1, 1)]


def test_a_restarted_worker_id_hands_back_only_its_own_attempts(clean_db: str) -> None:
    """Process A (fixed worker_id) is frozen on a job; process B starts with the same
    worker_id and stops. B's hand-back must not take A's job back (lowering its
    attempt for a third process to run it as attempt 1 again under the same id)."""
    fixed = str(uuid.uuid4())
    gates = Gates(1)
    tasks = gates.registry()
    with psycopg.connect(clean_db) as conn:
        job_id = pgqueue.enqueue(conn, "gated", {}, max_attempts=3)
    slow = {"heartbeat_interval": 10.0, "stall_timeout": 60.0, "worker_id": fixed}
    with running_worker(clean_db, tasks, **slow) as a:
        assert gates.started[0].wait(30)
        with running_worker(clean_db, tasks, **slow) as b:
            pass
        assert not b.of(events.JobsHandedBack)
        rows = fetch(clean_db, "SELECT state::text, attempt FROM pgqueue.jobs WHERE id = %s",
                     [job_id])
        assert rows == [("running", 1)]
        gates.gates[0].set()
        wait_until(lambda: a.finished("succeeded"), message="A's outcome written")
    assert fetch(clean_db, "SELECT state::text, attempt, result FROM pgqueue.finished_jobs "
                           "WHERE id = %s", [job_id]) == [("succeeded", 1, 0)]


def test_the_heartbeat_never_waits_for_a_row_another_statement_holds(clean_db: str) -> None:
    """The outcome write locks its rows in its own order; were the heartbeat to wait
    for them, the two could deadlock. It skips a locked row for one beat instead."""
    with psycopg.connect(clean_db) as conn:
        pgqueue.enqueue_many(conn, [{"task": "t"}, {"task": "t"}])
    worker = str(uuid.uuid4())
    held = [(row[0], row[12]) for row in claim(clean_db, worker)]
    assert len(held) == 2
    beat = {"worker_id": worker, "ids": [h[0] for h in held], "tokens": [h[1] for h in held],
            "host": "test", "pid": 1, "queues": ["default"], "tasks": ["t"], "concurrency": 2}
    with psycopg.connect(clean_db) as blocker:
        blocker.execute("SELECT 1 FROM pgqueue.jobs WHERE id = %s FOR UPDATE", [held[0][0]])
        with psycopg.connect(clean_db, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '100ms'")  # a wait would raise LockNotAvailable
            refreshed, _, _ = conn.execute(query("job_heartbeat"), beat).fetchone() or ()
        assert refreshed == 1
        blocker.rollback()
    assert run(clean_db, "job_heartbeat", beat)[0][0] == 2
