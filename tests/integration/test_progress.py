"""Progress and metadata a handler reports while its job runs."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from pgqueue._sql import query
from pgqueue.cli import main
from pgqueue.types import Job, JobContext
from pgqueue.worker.reporter import Reporter
from pgqueue.worker.session import Session
from tests.support import cli_runner, fetch, running_worker, scalar, wait_until


def enqueue_with_meta(dsn: str, task: str, meta: dict[str, Any], **kw: Any) -> int:
    """Enqueue, and set the job's meta in the same transaction (before any claim)."""
    with psycopg.connect(dsn) as conn:
        job_id = pgqueue.enqueue(conn, task, {}, **kw)
        conn.execute("UPDATE pgqueue.jobs SET meta = %s::jsonb WHERE id = %s",
                     [json.dumps(meta), job_id])
    return job_id


def running(dsn: str, job_id: int) -> tuple[Any, ...] | None:
    rows = fetch(dsn, "SELECT progress, progress_percent, meta FROM pgqueue.running_jobs "
                      "WHERE id = %s", [job_id])
    return rows[0] if rows else None


def finished(dsn: str, job_id: int) -> tuple[Any, ...]:
    return fetch(dsn, "SELECT state::text, progress, meta FROM pgqueue.finished_jobs "
                      "WHERE id = %s", [job_id])[0]


def test_progress_and_meta_show_while_the_job_runs_and_stay_in_history(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    gate = threading.Event()

    @tasks.task(name="pg.import")
    def import_rows(ctx: pgqueue.JobContext) -> None:
        ctx.update_meta({"phase": "load", "file": "a.csv"})
        for i in range(5):
            ctx.set_progress(i, 10, f"row {i}")
        assert gate.wait(60)
        ctx.update_meta({"phase": "done", "rows": 10})
        ctx.set_progress(10, 10, "all rows")

    @tasks.task(name="pg.async")
    async def run_async(ctx: pgqueue.JobContext) -> None:
        ctx.set_progress(1)
        await asyncio.sleep(0)
        ctx.set_progress(2.5, message="halfway")

    job_id = enqueue_with_meta(clean_db, "pg.import", {"source": "test", "phase": "new"})
    with running_worker(clean_db, tasks) as w:
        shown = wait_until(lambda: (r := running(clean_db, job_id)) and r[0]
                           and r[0]["done"] == 4 and r, message="the progress written")
        assert shown == ({"done": 4, "total": 10, "message": "row 4"}, Decimal("40.0"),
                         {"source": "test", "phase": "load", "file": "a.csv"})
        detail = pgqueue.get_job(psycopg.connect(clean_db, autocommit=True), job_id)
        assert detail is not None and detail.progress == shown[0] and detail.meta == shown[2]
        cli = cli_runner().invoke(main, ["jobs", "show", str(job_id), "--dsn", clean_db])
        assert "     progress: 4 of 10 (40.0 %): row 4" in cli.output, cli.output
        assert '"file": "a.csv"' in cli.output
        gate.set()
        other = enqueue_with_meta(clean_db, "pg.async", {})
        wait_until(lambda: len(w.finished("succeeded")) == 2, message="both jobs done")
    # The last reports came with the outcome: they are in history.
    assert finished(clean_db, job_id) == (
        "succeeded", {"done": 10, "total": 10, "message": "all rows"},
        {"source": "test", "phase": "done", "file": "a.csv", "rows": 10})
    assert finished(clean_db, other) == (
        "succeeded", {"done": 2.5, "total": None, "message": "halfway"}, {})


def test_a_job_that_reports_nothing_keeps_no_progress(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="pg.quiet")
    def quiet() -> None:
        pass

    job_id = enqueue_with_meta(clean_db, "pg.quiet", {"kept": True})
    with running_worker(clean_db, tasks) as w:
        wait_until(lambda: w.finished("succeeded"), message="the job done")
    assert finished(clean_db, job_id) == ("succeeded", None, {"kept": True})


def test_progress_of_a_retried_and_a_snoozed_attempt_stays_on_the_job(clean_db: str) -> None:
    tasks = pgqueue.Registry()
    runs: list[int] = []

    @tasks.task(name="pg.again", retry=pgqueue.RetryPolicy(base_seconds=0.01, jitter=0))
    def again(ctx: pgqueue.JobContext) -> None:
        runs.append(len(runs))
        ctx.set_progress(len(runs), 3)
        ctx.update_meta({f"run{len(runs)}": ctx.attempt})
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        if len(runs) == 2:
            raise pgqueue.Snooze(0)

    with psycopg.connect(clean_db) as conn:
        job_id = pgqueue.enqueue(conn, "pg.again", {})
    with running_worker(clean_db, tasks) as w:
        wait_until(lambda: w.finished("succeeded"), message="the third run done")
    assert finished(clean_db, job_id) == (
        "succeeded", {"done": 3, "total": 3, "message": None},
        {"run1": 1, "run2": 2, "run3": 2})


def test_a_stale_attempt_writes_no_progress(clean_db: str) -> None:
    """Worker A froze on a job; the job was reclaimed and runs on worker B. What A
    reports afterwards (and its outcome) changes nothing: B's reports stand."""
    tasks = pgqueue.Registry()
    lock = threading.Lock()
    started = [threading.Event(), threading.Event()]
    gates = [threading.Event(), threading.Event()]
    calls: list[int] = []

    @tasks.task(name="pg.gated")
    def gated(ctx: pgqueue.JobContext) -> str:
        with lock:
            n = len(calls)
            calls.append(n)
        ctx.set_progress(n + 1, 100, f"run {n}")
        ctx.update_meta({f"run{n}": True})
        started[n].set()
        assert gates[n].wait(60)
        if n == 0:  # stale by now: reported through the reporter, then the outcome
            ctx.set_progress(99, 100, "stale")
            ctx.update_meta({"stale": True})
        return f"run {n}"

    with psycopg.connect(clean_db) as conn:
        job_id = pgqueue.enqueue(conn, "pg.gated", {}, max_attempts=3)
    slow = {"heartbeat_interval": 10.0, "stall_timeout": 60.0}
    with running_worker(clean_db, tasks, concurrency=1, **slow) as a:
        assert started[0].wait(30)
        wait_until(lambda: (r := running(clean_db, job_id)) and r[0] and r[2].get("run0"),
                   message="A's reports written")
        # The test plays the reaper: A's attempt is taken back, and B claims it.
        with psycopg.connect(clean_db, autocommit=True) as conn:
            conn.execute(query("job_reclaim_stalled"),
                         {"stall_seconds": 0, "limit": 100})
        with running_worker(clean_db, tasks, **slow) as b:
            assert started[1].wait(30)
            wait_until(lambda: (r := running(clean_db, job_id)) and r[0]
                       and r[0]["done"] == 2, message="B's report")
            gates[0].set()  # A goes on, stale
            wait_until(lambda: a.of(events.JobLost), message="A's outcome discarded")
            row = running(clean_db, job_id)
            assert row is not None and row[0]["done"] == 2 and "stale" not in row[2]
            gates[1].set()
            wait_until(lambda: b.finished("succeeded"), message="B's outcome written")
    state, progress, meta = finished(clean_db, job_id)
    assert (state, progress) == ("succeeded", {"done": 2, "total": 100, "message": "run 1"})
    assert meta == {"run0": True, "run1": True}  # A's first report landed; nothing stale
    assert scalar(clean_db, "SELECT result FROM pgqueue.finished_jobs WHERE id = %s",
                  [job_id]) == "run 1"


def test_the_reporter_writes_only_under_the_attempts_claim(clean_db: str) -> None:
    """The reporter's statement, fenced on (id, claim token, worker): a context of an
    attempt the job no longer runs writes nothing; the current one does."""
    worker_id = str(uuid.uuid4())
    with psycopg.connect(clean_db, autocommit=True) as conn:
        job_id = pgqueue.enqueue(conn, "pg.t", {})
        claimed = conn.execute(query("job_claim"), {
            "queues": ["default"], "slots": [1], "tasks": ["pg.t"], "limit": 1,
            "worker_id": worker_id, "key_tasks": [], "key_caps": [], "bases": None,
            "strides": None, "fair": None, "cursors": None,
            "async_commit": False}).fetchone()
    assert claimed is not None
    token = claimed[12]

    def context(claim_token: int, done: int) -> JobContext:
        job = Job(*claimed[:12], claim_token=claim_token)
        ctx = JobContext(job, worker_id)
        ctx.set_progress(done)
        ctx.update_meta({"by": claim_token})
        return ctx

    async def write(*contexts: JobContext) -> set[int]:
        session = Session(clean_db, name="test")
        reporter = Reporter(session, worker_id, lambda event: None)
        try:
            batch = [(c, u) for c in contexts if (u := c.take_updates()) is not None]
            return await reporter.write(batch)
        finally:
            await session.close()

    assert asyncio.run(write(context(token - 1, 5))) == set()
    assert fetch(clean_db, "SELECT progress, meta FROM pgqueue.jobs WHERE id = %s",
                 [job_id]) == [(None, {})]
    assert asyncio.run(write(context(token, 7))) == {job_id}
    assert fetch(clean_db, "SELECT progress, meta FROM pgqueue.jobs WHERE id = %s",
                 [job_id]) == [({"done": 7, "total": None, "message": None}, {"by": token})]


BAD_PROGRESS = [
    ((-1,), "progress done must be >= 0"),
    (("3",), "progress done must be a number"),
    ((True,), "progress done must be a number"),
    ((math.nan,), "progress done must be a finite number"),
    ((1, -0.5), "progress total must be >= 0"),
    ((1, math.inf), "progress total must be a finite number"),
    ((1, None, 7), "progress message must be a str"),
    ((1, None, "x" * 201), "at most 200 characters"),
    ((1, None, "a\x00b"), "NUL character"),
    ((1, None, "\udcff"), "lone surrogate"),
]
BAD_META = [
    ([1, 2], "meta must be a JSON object"),
    ({"a": math.nan}, "meta['a'] is nan"),
    ({1: "x"}, "JSON object keys must be strings"),
    ({"a": {1, 2}}, "meta['a'] is a set"),
    ({"a": "b\x00"}, "NUL character"),
    ({"big": "x" * 70_000}, "at most 65536 are allowed"),
]


def test_bad_reports_raise_in_the_handler_and_record_nothing(clean_db: str) -> None:
    tasks = pgqueue.Registry()

    @tasks.task(name="pg.bad")
    def bad(ctx: pgqueue.JobContext) -> list[str]:
        caught = []
        for args, _ in BAD_PROGRESS:
            try:
                ctx.set_progress(*args)
            except pgqueue.InvalidArgumentError as exc:
                caught.append(str(exc))
        for values, _ in BAD_META:
            try:
                ctx.update_meta(values)
            except pgqueue.InvalidArgumentError as exc:
                caught.append(str(exc))
        return caught

    job_id = enqueue_with_meta(clean_db, "pg.bad", {"before": 1})
    with running_worker(clean_db, tasks) as w:
        wait_until(lambda: w.finished("succeeded"), message="the job done")
    caught = scalar(clean_db, "SELECT result FROM pgqueue.finished_jobs WHERE id = %s",
                    [job_id])
    expected = [text for _, text in BAD_PROGRESS + BAD_META]
    assert len(caught) == len(expected)
    for message, text in zip(caught, expected, strict=True):
        assert text in message, (text, message)
    assert finished(clean_db, job_id) == ("succeeded", None, {"before": 1})


@pytest.mark.parametrize(("args", "text"), BAD_PROGRESS)
def test_set_progress_refuses_bad_values(args: tuple[Any, ...], text: str) -> None:
    ctx = JobContext(Job(1, "q", "t", {}, 0, 1, 1, None, None, None), "w")  # type: ignore[arg-type]
    with pytest.raises(pgqueue.InvalidArgumentError) as raised:
        ctx.set_progress(*args)
    assert text in str(raised.value)
    assert ctx.take_updates() is None


def test_progress_percent_counts_only_numbers_and_a_positive_total(clean_db: str) -> None:
    cases = {'{"done": 1, "total": 4}': Decimal("25.0"), '{"done": 9, "total": 4}': 100,
             '{"done": 1, "total": 0}': None, '{"done": "1", "total": 4}': None,
             '{"done": 1, "total": null}': None, '{"done": 1, "total": 3}': Decimal("33.3"),
             '{}': None}
    for progress, expected in cases.items():
        assert scalar(clean_db, "SELECT pgqueue.progress_percent(%s::jsonb)",
                      [progress]) == expected, progress
    assert scalar(clean_db, "SELECT pgqueue.progress_percent(NULL)") is None


def test_the_api_and_the_dashboard_show_progress_meta_and_snoozes(
        dashboards: Any, clean_db: str) -> None:
    from tests.integration.test_api import call

    worker_id = str(uuid.uuid4())
    with psycopg.connect(clean_db, autocommit=True) as conn:
        job_id = pgqueue.enqueue(conn, "pg.shown", {})
        conn.execute("UPDATE pgqueue.jobs SET snoozes = 3, meta = '{\"customer\": 42}' "
                     "WHERE id = %s", [job_id])
        (claimed,) = conn.execute(query("job_claim"), {
            "queues": ["default"], "slots": [1], "tasks": ["pg.shown"], "limit": 1,
            "worker_id": worker_id, "key_tasks": [], "key_caps": [], "bases": None,
            "strides": None, "fair": None, "cursors": None,
            "async_commit": False}).fetchall()
        conn.execute(query("job_report_many"), {
            "ids": [job_id], "tokens": [claimed[12]], "worker_id": worker_id,
            "progress": ['{"done": 4, "total": 10, "message": "<b>row</b> 4"}'],
            "meta": None})
    base = f"http://127.0.0.1:{dashboards()}"
    status, _, body = call(f"{base}/api/jobs/{job_id}")
    assert status == 200
    job = json.loads(body)
    assert (job["progress"], job["meta"], job["snoozes"]) == (
        {"done": 4, "total": 10, "message": "<b>row</b> 4"}, {"customer": 42}, 3)
    status, headers, body = call(f"{base}/jobs/{job_id}")
    page = body.decode()
    assert status == 200 and "style-src 'self'" in headers["Content-Security-Policy"]
    assert '<rect class="run" x="0" y="0" width="40.0" height="10"/>' in page
    assert "4 of 10 (40.0 %): &lt;b&gt;row&lt;/b&gt; 4" in page
    assert '<span id="job-snoozes">3</span>' in page and "&quot;customer&quot;: 42" in page
    assert " style=" not in page and "<style" not in page
    status, _, body = call(f"{base}/jobs?state=running")
    listed = body.decode()
    row = listed[listed.index(f'data-job-id="{job_id}"'):]
    row = row[:row.index("</tr>")]
    assert 'class="job-progress"' in row and 'width="40.0"' in row and "3 snoozed" in row


def test_a_drain_writes_the_reports_with_the_outcome(clean_db: str) -> None:
    from pgqueue.testing import drain

    tasks = pgqueue.Registry()

    @tasks.task(name="pg.drained")
    def drained(ctx: pgqueue.JobContext) -> None:
        ctx.set_progress(1, 2)
        ctx.update_meta({"step": 1})
        ctx.set_progress(2, 2, "done")

    with psycopg.connect(clean_db) as conn:
        job_id = pgqueue.enqueue(conn, "pg.drained", {})
        assert drain(conn, tasks).outcomes == [("pg.drained", "succeeded")]
        assert conn.execute("SELECT progress, meta FROM pgqueue.finished_jobs WHERE id = %s",
                            [job_id]).fetchone() == (
            {"done": 2, "total": 2, "message": "done"}, {"step": 1})
