"""Tags from Python: list_jobs filters (all-of, any-of), get_job and the views show them,
cancel_jobs and retry_jobs by tag (sync and async) touch exactly the tagged jobs."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.producer.tagged import BATCH_SIZE
from tests.integration.tagged_jobs import finished, live, running, states

Conn = psycopg.Connection[Any]


@pytest.fixture
def jobs(conn: Conn) -> dict[str, int]:
    """Jobs with every combination the filters tell apart, live and finished."""
    made = {
        "ab_live": live(conn, ["a", "b"]),
        "a_failed": finished(conn, ["a"], "failed"),
        "b_succeeded": finished(conn, ["b"], "succeeded"),
        "none_live": live(conn, []),
        "c_live": live(conn, ["c"], queue="other"),
        "none_failed": finished(conn, [], "failed"),
        "abc_cancelled": finished(conn, ["c", "b", "a"], "cancelled"),
    }
    conn.commit()
    return made


def listed(conn: Conn, **filters: Any) -> list[int]:
    return [j.id for j in pgqueue.list_jobs(conn, **filters).jobs]


def test_list_jobs_by_tags_all_of_and_any_of(conn: Conn, jobs: dict[str, int]) -> None:
    newest_first = sorted(jobs.values(), reverse=True)

    def expect(*names: str) -> list[int]:
        return [i for i in newest_first if i in {jobs[n] for n in names}]

    assert listed(conn, tags=["a"]) == expect("ab_live", "a_failed", "abc_cancelled")
    assert listed(conn, tags=["a", "b"]) == expect("ab_live", "abc_cancelled")
    assert listed(conn, tags=("b", "a"), tags_mode="all") == expect("ab_live", "abc_cancelled")
    assert listed(conn, tags=["a", "c"], tags_mode="any") == expect(
        "ab_live", "a_failed", "c_live", "abc_cancelled")
    assert listed(conn, tags=["c"], queue="other") == expect("c_live")
    assert listed(conn, tags=["a"], state="failed") == expect("a_failed")
    assert listed(conn, tags=["b"], state="succeeded") == expect("b_succeeded")
    assert listed(conn, tags=["nobody-has-this"]) == []
    assert listed(conn, tags=["a", "nobody-has-this"]) == []
    assert listed(conn, tags=["a", "nobody-has-this"], tags_mode="any") == listed(
        conn, tags=["a"])
    assert len(listed(conn)) == len(jobs)  # no tag filter: every job


def test_list_jobs_shows_each_jobs_tags_and_pages_a_tag(conn: Conn,
                                                         jobs: dict[str, int]) -> None:
    page = pgqueue.list_jobs(conn, tags=["a"], limit=2)
    assert [(j.id, j.tags) for j in page.jobs] == [
        (jobs["abc_cancelled"], ["c", "b", "a"]), (jobs["a_failed"], ["a"])]
    rest = pgqueue.list_jobs(conn, tags=["a"], limit=2, cursor=page.next_cursor)
    assert [(j.id, j.tags) for j in rest.jobs] == [(jobs["ab_live"], ["a", "b"])]
    assert rest.next_cursor is None
    untagged = {j.id: j.tags for j in pgqueue.list_jobs(conn).jobs}
    assert untagged[jobs["none_live"]] == [] and untagged[jobs["none_failed"]] == []


@pytest.mark.parametrize(("filters", "message"), [
    ({"tags": "a"}, "tags must be a list of strings"),
    ({"tags": []}, "at least one tag"),
    ({"tags": [""]}, "1 to 100 characters"),
    ({"tags": ["x" * 101]}, "1 to 100 characters"),
    ({"tags": ["a\x00b"]}, "without NUL"),
    ({"tags": ["\ud800"]}, "lone surrogate"),
    ({"tags": [42]}, "every tag must be a string"),
    ({"tags": [f"t{i}" for i in range(101)]}, "at most 100 tags"),
    ({"tags": ["a"], "tags_mode": "some"}, "tags_mode must be 'all' or 'any'"),
    ({"tags_mode": None}, "tags_mode must be 'all' or 'any'"),
])
def test_list_jobs_refuses_a_bad_tag_filter_before_running_anything(
        conn: Conn, filters: dict[str, Any], message: str) -> None:
    job_id = live(conn, ["a"])
    with pytest.raises(pgqueue.InvalidArgumentError, match=message):
        pgqueue.list_jobs(conn, **filters)
    # Nothing ran: the caller's transaction is usable and holds its job.
    assert listed(conn, tags=["a"]) == [job_id]


def test_get_job_and_the_views_show_tags_and_meta(conn: Conn) -> None:
    queued = live(conn, ["customer:42"], meta={"source": "import"})
    ran = running(conn, ["customer:43"], meta={"step": 2})
    late = live(conn, ["later"])
    conn.execute("UPDATE pgqueue.jobs SET run_at = now() + interval '1 hour' WHERE id = %s",
                 [late])
    failed = finished(conn, ["customer:42", "import"], "failed", meta={"file": "a.csv"})
    detail = pgqueue.get_job(conn, queued)
    assert detail is not None and (detail.tags, detail.meta) == (
        ["customer:42"], {"source": "import"})
    detail = pgqueue.get_job(conn, failed)
    assert detail is not None and (detail.tags, detail.meta) == (
        ["customer:42", "import"], {"file": "a.csv"})

    def view(name: str, job_id: int) -> tuple[Any, ...] | None:
        return conn.execute(f"SELECT tags, meta FROM pgqueue.{name} WHERE id = %s",
                            [job_id]).fetchone()

    assert view("running_jobs", ran) == (["customer:43"], {"step": 2})
    assert view("scheduled_jobs", late) == (["later"], {})
    assert view("failed_jobs", failed) == (["customer:42", "import"], {"file": "a.csv"})
    assert view("all_jobs", queued) == (["customer:42"], {"source": "import"})
    assert view("all_jobs", failed) == (["customer:42", "import"], {"file": "a.csv"})
    by_tag = conn.execute("SELECT id FROM pgqueue.all_jobs WHERE tags @> ARRAY['customer:42'] "
                          "AND tags <> '{}' ORDER BY id DESC").fetchall()
    assert [r[0] for r in by_tag] == [failed, queued]


# --- cancel and retry by tag ------------------------------------------------------------


def test_cancel_jobs_by_tag_cancels_exactly_the_tagged_live_jobs(conn: Conn) -> None:
    queued = [live(conn, ["x"]) for _ in range(3)] + [live(conn, ["y", "x"], queue="other")]
    held = running(conn, ["x"])
    spared = [live(conn, ["y"]), live(conn, []), live(conn, ["xx"]), running(conn, ["y"])]
    done_before = finished(conn, ["x"], "failed")
    conn.commit()
    result = pgqueue.cancel_jobs(conn, tags=["x"], reason="import aborted")
    conn.commit()
    assert result == pgqueue.CancelCounts(cancelled=4, requested=1)
    assert result.total == 5
    assert states(conn, queued) == dict.fromkeys(queued, "cancelled")
    assert states(conn, [held]) == {held: "running"}
    requested = conn.execute("SELECT cancel_requested_at IS NOT NULL FROM pgqueue.jobs "
                             "WHERE id = %s", [held]).fetchone()
    assert requested == (True,)
    assert states(conn, spared) == dict(zip(spared, ["queued", "queued", "queued", "running"],
                                            strict=True))
    assert states(conn, [done_before]) == {done_before: "failed"}
    reasons = conn.execute("SELECT DISTINCT last_error FROM pgqueue.finished_jobs "
                           "WHERE id = ANY (%s)", [queued]).fetchall()
    assert reasons == [("import aborted",)]
    # Again: only the running one is still live, and asking again counts it again.
    assert pgqueue.cancel_jobs(conn, tags=["x"]) == pgqueue.CancelCounts(0, 1)


def test_cancel_jobs_by_any_tag_in_one_queue(conn: Conn) -> None:
    mine = [live(conn, ["a"], queue="q1"), live(conn, ["b"], queue="q1")]
    other_queue = live(conn, ["a"], queue="q2")
    neither = live(conn, ["c"], queue="q1")
    result = pgqueue.cancel_jobs(conn, tags=["a", "b"], tags_mode="any", queue="q1")
    assert result == pgqueue.CancelCounts(2, 0)
    assert states(conn, [*mine, other_queue, neither]) == {
        mine[0]: "cancelled", mine[1]: "cancelled", other_queue: "queued", neither: "queued"}


def test_cancel_jobs_works_through_many_batches(conn: Conn) -> None:
    count = BATCH_SIZE * 2 + 7
    conn.execute("INSERT INTO pgqueue.jobs (task, queue, args, tags) "
                 "SELECT 'bulk', 'mail', jsonb_build_object('n', g), "
                 "ARRAY['campaign:spring', 'customer:' || g %% 10] "
                 "FROM generate_series(1, %s) g", [count])
    others = [live(conn, ["campaign:summer"]) for _ in range(3)]
    conn.commit()
    assert pgqueue.cancel_jobs(conn, tags=["campaign:spring"]).cancelled == count
    assert conn.execute("SELECT count(*) FROM pgqueue.finished_jobs WHERE state = 'cancelled' "
                        "AND tags @> ARRAY['campaign:spring']").fetchone() == (count,)
    assert conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (3,)
    assert states(conn, others) == dict.fromkeys(others, "queued")


def test_cancel_jobs_never_commits(conn: Conn) -> None:
    job_id = live(conn, ["x"])
    conn.commit()
    assert pgqueue.cancel_jobs(conn, tags=["x"]).cancelled == 1
    conn.rollback()
    assert states(conn, [job_id]) == {job_id: "queued"}


def test_retry_jobs_by_tag_retries_exactly_the_failed_and_cancelled(conn: Conn) -> None:
    wanted = [finished(conn, ["x"], "failed"), finished(conn, ["x", "y"], "cancelled"),
              finished(conn, ["x"], "failed", queue="other")]
    succeeded = finished(conn, ["x"], "succeeded")
    untagged = finished(conn, [], "failed")
    other_tag = finished(conn, ["y"], "failed")
    key_taken = finished(conn, ["x"], "failed", unique_key="k1")
    holder = live(conn, [], unique_key="k1")
    queued = live(conn, ["x"])
    conn.commit()
    assert pgqueue.retry_jobs(conn, tags=["x"]) == 3
    conn.commit()
    assert states(conn, wanted) == dict.fromkeys(wanted, "queued")
    back = conn.execute("SELECT id, tags, attempt FROM pgqueue.jobs WHERE id = ANY (%s) "
                        "ORDER BY id", [wanted]).fetchall()
    assert back == [(wanted[0], ["x"], 0), (wanted[1], ["x", "y"], 0), (wanted[2], ["x"], 0)]
    assert states(conn, [succeeded, untagged, other_tag, key_taken, holder, queued]) == {
        succeeded: "succeeded", untagged: "failed", other_tag: "failed", key_taken: "failed",
        holder: "queued", queued: "queued"}
    assert pgqueue.retry_jobs(conn, tags=["x"]) == 0


def test_retry_jobs_any_of_in_one_queue(conn: Conn) -> None:
    mine = [finished(conn, ["a"], "failed", queue="q1"),
            finished(conn, ["b"], "cancelled", queue="q1")]
    elsewhere = finished(conn, ["a"], "failed", queue="q2")
    assert pgqueue.retry_jobs(conn, tags=["a", "b"], tags_mode="any", queue="q1") == 2
    assert states(conn, [*mine, elsewhere]) == {mine[0]: "queued", mine[1]: "queued",
                                                elsewhere: "failed"}


def test_cancel_and_retry_by_tag_async(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as setup:
        queued = live(setup, ["x"])
        held = running(setup, ["x"])
        failed = finished(setup, ["x"], "failed")
        spared = live(setup, ["y"])

    async def main() -> tuple[pgqueue.CancelCounts, int]:
        async with await psycopg.AsyncConnection.connect(clean_db, autocommit=True) as conn:
            cancelled = await pgqueue.cancel_jobs_async(conn, tags=["x"])
            return cancelled, await pgqueue.retry_jobs_async(conn, tags=["x"])

    cancelled, retried = asyncio.run(main())
    assert cancelled == pgqueue.CancelCounts(cancelled=1, requested=1)
    assert retried == 2  # the failed one and the one just cancelled
    with psycopg.connect(clean_db) as check:
        assert states(check, [queued, held, failed, spared]) == {
            queued: "queued", held: "running", failed: "queued", spared: "queued"}


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: pgqueue.cancel_jobs(c, tags=None), "at least one tag"),  # type: ignore[arg-type]
    (lambda c: pgqueue.cancel_jobs(c, tags=[]), "at least one tag"),
    (lambda c: pgqueue.cancel_jobs(c, tags="x"), "list of strings"),
    (lambda c: pgqueue.cancel_jobs(c, tags=["x"], reason=""), "reason"),
    (lambda c: pgqueue.cancel_jobs(c, tags=["x"], queue="no spaces"), "queue"),
    (lambda c: pgqueue.cancel_jobs(c, tags=["x"], tags_mode="one"), "tags_mode"),
    (lambda c: pgqueue.retry_jobs(c, tags=[""]), "1 to 100 characters"),
    (lambda c: pgqueue.retry_jobs(c, tags=["x"], queue=""), "queue"),
])
def test_bulk_by_tag_refuses_bad_input_and_changes_nothing(conn: Conn, call: Any,
                                                           message: str) -> None:
    job_id = live(conn, ["x"])
    failed = finished(conn, ["x"], "failed")
    with pytest.raises(pgqueue.InvalidArgumentError, match=message):
        call(conn)
    assert states(conn, [job_id, failed]) == {job_id: "queued", failed: "failed"}


def tag_rows_match_history(conn: Conn) -> bool:
    """finished_job_tags holds exactly one row per distinct tag of each finished job."""
    row = conn.execute(
        "SELECT (SELECT array_agg((tag, job_id) ORDER BY tag, job_id) "
        "        FROM pgqueue.finished_job_tags) IS NOT DISTINCT FROM "
        "       (SELECT array_agg((tag, id) ORDER BY tag, id) FROM "
        "        (SELECT DISTINCT t.tag, h.id FROM pgqueue.finished_jobs h, "
        "         unnest(h.tags) t(tag)) x)"
    ).fetchone()
    return bool(row and row[0])


def test_the_tag_table_follows_history_through_every_change(conn: Conn) -> None:
    kept = finished(conn, ["a", "b", "a"], "succeeded")  # a tag given twice counts once
    retried = finished(conn, ["a"], "failed")
    pruned = finished(conn, ["b"], "cancelled")
    finished(conn, [], "succeeded")
    assert tag_rows_match_history(conn)
    assert pgqueue.retry(conn, retried) is pgqueue.RetryOutcome.RETRIED
    assert tag_rows_match_history(conn)
    assert listed(conn, tags=["a"], state="failed") == []
    conn.execute("UPDATE pgqueue.finished_jobs SET finished_at = now() - interval '2 days' "
                 "WHERE id = %s", [pruned])
    assert pgqueue.prune(conn, 86400) == 1
    assert tag_rows_match_history(conn)
    conn.execute("UPDATE pgqueue.finished_jobs SET tags = '{c}' WHERE id = %s", [kept])
    assert tag_rows_match_history(conn)
    assert listed(conn, tags=["c"]) == [kept] and listed(conn, tags=["b"]) == []
    conn.commit()
    conn.execute("TRUNCATE pgqueue.finished_jobs")
    assert conn.execute("SELECT count(*) FROM pgqueue.finished_job_tags").fetchone() == (0,)
