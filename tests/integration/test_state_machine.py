"""The job state machine, driven by hypothesis through pgqueue's own SQL.

Rules claim, heartbeat, complete (succeeded, failed, cancelled, retried,
snoozed), report (progress and meta while running), reclaim (the reaper with a
stall timeout of 0), cancel and hand back run the
named statements of ``sql/queries`` against a real database for three fake
workers. Each worker remembers what it claimed, so it can later send stale
outcomes (an attempt reclaimed meanwhile). A model says what must happen; after
every step the database must match it:

- every job is in exactly one of pgqueue.jobs and pgqueue.finished_jobs;
- live jobs are queued or running (running under a worker), finished ones are
  succeeded, failed or cancelled;
- a stale outcome or report (another claim's token, or another worker) never
  applies, even from a worker id that claimed the same job again after a
  hand-back;
- the attempt never decreases except by a hand-back or a snooze (which gives
  the attempt back and counts one more snooze, up to MAX_SNOOZES; the next
  snooze fails the job), and no job disappears;
- progress is the latest report applied (or the one an outcome carried), live
  and in history; meta holds every key reported.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pgqueue._sql import query

WORKERS = [str(uuid.UUID(int=i + 1)) for i in range(3)]
MAX_ATTEMPTS = 3
MAX_SNOOZES = 2
QUEUE = "sm"
TASK = "sm.task"
FINAL = {"succeeded", "failed", "cancelled"}


class Job:
    def __init__(self, job_id: int) -> None:
        self.id = job_id
        self.state = "queued"
        self.attempt = 0
        self.worker: str | None = None
        self.token: int | None = None
        self.cancel_requested = False
        self.snoozes = 0
        self.progress: int | None = None  # the model's progress: its "done"
        self.meta: dict[str, int] = {}


class JobStates(RuleBasedStateMachine):
    dsn: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.conn = psycopg.connect(self.dsn, autocommit=True)
        self.conn.execute("TRUNCATE pgqueue.jobs, pgqueue.finished_jobs, pgqueue.workers")
        self.jobs: dict[int, Job] = {}
        # What each worker believes it holds: (job id, attempt, claim token),
        # possibly stale.
        self.held: dict[str, list[tuple[int, int, int]]] = {w: [] for w in WORKERS}
        self.last_attempt: dict[int, int] = {}

    def run(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(query(name), params)
        return cur.fetchall() if cur.description else []

    def teardown(self) -> None:
        self.conn.close()

    # --- rules -------------------------------------------------------------------------

    @rule(count=st.integers(1, 3))
    def enqueue(self, count: int) -> None:
        for _ in range(count):
            row = self.conn.execute(
                "SELECT pgqueue.enqueue(task => %s, queue => %s, max_attempts => %s)",
                [TASK, QUEUE, MAX_ATTEMPTS]).fetchone()
            assert row is not None
            self.jobs[row[0]] = Job(row[0])

    @rule(worker=st.sampled_from(WORKERS), limit=st.integers(1, 4))
    def claim(self, worker: str, limit: int) -> None:
        queued = [j for j in self.jobs.values() if j.state == "queued"]
        rows = self.run("job_claim", {"queues": [QUEUE], "slots": [limit], "tasks": [TASK],
                                      "limit": limit, "worker_id": worker, "key_tasks": [],
                                      "key_caps": [],
                                      "bases": None, "strides": None,
                                      "fair": None, "cursors": None, "async_commit": False})
        assert len(rows) == min(limit, len(queued))
        for row in rows:
            job = self.jobs[row[0]]
            assert job.state == "queued", "claimed a job that was not queued"
            job.state, job.attempt, job.worker = "running", job.attempt + 1, worker
            assert row[5] == job.attempt
            assert job.token is None or row[12] > job.token, "a claim token repeated"
            job.token = row[12]
            self.held[worker].append((job.id, job.attempt, job.token))

    @rule(worker=st.sampled_from(WORKERS))
    def heartbeat(self, worker: str) -> None:
        held = self.held[worker]
        rows = self.run("job_heartbeat", {"worker_id": worker, "ids": [h[0] for h in held],
                                          "tokens": [h[2] for h in held], "host": "test",
                                          "pid": 1, "queues": [QUEUE], "tasks": [TASK],
                                          "concurrency": 4})
        # Only the attempt a claim handed out, under its token, is kept alive.
        expected = {i for i, _, token in held if self.jobs[i].state == "running"
                    and self.jobs[i].worker == worker and self.jobs[i].token == token}
        assert rows[0][0] == len(expected)
        assert set(rows[0][2]) == {i for i in expected if self.jobs[i].cancel_requested}

    @precondition(lambda self: any(self.held.values()))
    @rule(data=st.data(), outcome=st.sampled_from(["succeeded", "failed", "cancelled",
                                                   "retried", "snoozed"]),
          progress=st.none() | st.integers(0, 100))
    def complete(self, data: st.DataObject, outcome: str, progress: int | None) -> None:
        worker = data.draw(st.sampled_from([w for w in WORKERS if self.held[w]]))
        job_id, attempt, token = data.draw(st.sampled_from(self.held[worker]))
        self.held[worker].remove((job_id, attempt, token))
        if outcome == "retried" and attempt >= MAX_ATTEMPTS:
            outcome = "failed"  # as the executor decides on the last attempt
        error = None if outcome in ("succeeded", "snoozed") \
            else '{"kind": "error", "message": "x"}'
        rows = self.run("job_complete_many", {
            "ids": [job_id], "tokens": [token], "outcomes": [outcome],
            "delays": [0.0 if outcome in ("retried", "snoozed") else None], "errors": [error],
            "results": [None], "max_snoozes": [MAX_SNOOZES if outcome == "snoozed" else None],
            "progress": [None if progress is None else f'{{"done": {progress}}}'],
            "meta": [None if progress is None else f'{{"last": {progress}}}'],
            "worker_id": worker})
        job = self.jobs[job_id]
        fits = job.state == "running" and job.worker == worker and job.token == token
        assert [r[0] for r in rows] == ([job_id] if fits else []), (
            "a stale outcome applied" if not fits else "a valid outcome was refused")
        if not fits:
            return
        if progress is not None:
            job.progress, job.meta["last"] = progress, progress
        job.worker = None
        if outcome == "snoozed" and job.snoozes >= MAX_SNOOZES:
            assert rows[0][2:] == ("failed", f"snoozed again after {MAX_SNOOZES} snoozes, "
                                   f"the most max_snoozes ({MAX_SNOOZES}) allows; failed")
            job.state = "failed"
        elif outcome == "snoozed":
            assert rows[0][2:] == (None, None)
            job.state, job.attempt, job.snoozes = "queued", job.attempt - 1, job.snoozes + 1
            self.last_attempt[job_id] = job.attempt  # given back
        else:
            job.state = "queued" if outcome == "retried" else outcome

    @precondition(lambda self: any(self.held.values()))
    @rule(data=st.data(), done=st.integers(0, 100))
    def report(self, data: st.DataObject, done: int) -> None:
        worker = data.draw(st.sampled_from([w for w in WORKERS if self.held[w]]))
        job_id, _, token = data.draw(st.sampled_from(self.held[worker]))
        key = data.draw(st.sampled_from(["a", "b"]))
        rows = self.run("job_report_many", {
            "ids": [job_id], "tokens": [token], "progress": [f'{{"done": {done}}}'],
            "meta": [f'{{"{key}": {done}}}'], "worker_id": worker})
        job = self.jobs[job_id]
        fits = job.state == "running" and job.worker == worker and job.token == token
        assert [r[0] for r in rows] == ([job_id] if fits else []), (
            "a stale report applied" if not fits else "a valid report was refused")
        if fits:
            job.progress, job.meta[key] = done, done

    @rule()
    def reclaim(self) -> None:
        rows = self.run("job_reclaim_stalled", {"stall_seconds": 0, "limit": 1000})
        running = {j.id for j in self.jobs.values() if j.state == "running"}
        assert {r[0] for r in rows} == running
        for row in rows:
            job = self.jobs[row[0]]
            expected = "queued" if job.attempt < MAX_ATTEMPTS else "failed"
            assert row[4] == expected
            job.state, job.worker = expected, None

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job = self.jobs[data.draw(st.sampled_from(sorted(self.jobs)))]
        answer = self.run("job_cancel", {"job_id": job.id, "reason": "test"})[0][0]
        if job.state == "queued":
            assert answer == "cancelled"
            job.state = "cancelled"
        elif job.state == "running":
            assert answer == "requested"
            job.cancel_requested = True
        else:
            assert answer == "finished"

    @rule(worker=st.sampled_from(WORKERS))
    def hand_back(self, worker: str) -> None:
        # Everything the worker believes it holds, stale claims included.
        held = self.held[worker]
        rows = self.run("job_hand_back", {"ids": [h[0] for h in held],
                                          "tokens": [h[2] for h in held], "worker_id": worker})
        mine = {j.id for j in self.jobs.values() if j.state == "running" and j.worker == worker
                and (j.id, j.attempt, j.token) in held}
        assert {r[0] for r in rows} == mine
        for job_id in mine:
            job = self.jobs[job_id]
            job.state, job.worker, job.attempt = "queued", None, job.attempt - 1
            self.last_attempt[job_id] = job.attempt  # the one allowed decrease

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def database_matches_the_model(self) -> None:
        live = {r[0]: r[1:] for r in self.conn.execute(
            "SELECT id, state::text, attempt, worker_id::text, snoozes, "
            "(progress ->> 'done')::int, meta FROM pgqueue.jobs")}
        done = {r[0]: r[1:] for r in self.conn.execute(
            "SELECT id, state::text, attempt, snoozes, (progress ->> 'done')::int, meta "
            "FROM pgqueue.finished_jobs")}
        assert not set(live) & set(done), "a job is in both tables"
        assert set(live) | set(done) == set(self.jobs), "a job disappeared or appeared"
        for job in self.jobs.values():
            reports = (job.snoozes, job.progress, job.meta)
            if job.state in FINAL:
                assert done[job.id] == (job.state, job.attempt, *reports), job.id
            else:
                state, attempt, worker = live[job.id][:3]
                assert (state, attempt, worker) == (job.state, job.attempt, job.worker), job.id
                assert live[job.id][3:] == reports, job.id
                assert state != "running" or worker is not None
            assert job.attempt >= self.last_attempt.get(job.id, 0), "attempt decreased"
            assert 0 <= job.attempt <= MAX_ATTEMPTS
            self.last_attempt[job.id] = job.attempt


def test_job_state_machine(clean_db: str) -> None:
    JobStates.dsn = clean_db
    run_state_machine_as_test(JobStates, settings=settings(
        max_examples=60, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
