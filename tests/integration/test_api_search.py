"""The dashboard's job kinds, search, queue page, charts and bulk actions over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

import psycopg
import pytest

import pgqueue
from tests.integration.test_api import Served, call, failed_job


@pytest.fixture
def serve(dashboards: Callable[..., int]) -> Served:
    return lambda **options: f"http://127.0.0.1:{dashboards(**options)}"


def _jobs(base: str, query: str) -> list[dict[str, object]]:
    status, _, body = call(f"{base}/api/jobs?{query}")
    assert status == 200, body
    return list(json.loads(body)["jobs"])


def _kinds(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        ready = pgqueue.enqueue(conn, "nobody.runs.this", {"n": 1}, queue="mail")
        scheduled = pgqueue.enqueue(conn, "send", {"n": 2}, queue="mail", delay=3600)
        retrying = pgqueue.enqueue(conn, "send", {"n": 3}, queue="mail", delay=3600)
        conn.execute("UPDATE pgqueue.jobs SET attempt = 1, last_error = 'SMTP 451 later' "
                     "WHERE id = %s", [retrying])
    return {"ready": ready, "scheduled": scheduled, "retrying": retrying}


def test_scheduled_retrying_and_unclaimable_jobs_are_told_apart(serve: Served,
                                                                 clean_db: str) -> None:
    base = serve()
    ids = _kinds(clean_db)
    by_id = {j["id"]: j["kind"] for j in _jobs(base, "")}
    assert by_id[ids["ready"]] == "unclaimable"  # no worker is registered
    assert by_id[ids["scheduled"]] == "scheduled"
    assert by_id[ids["retrying"]] == "retrying"
    assert {j["id"] for j in _jobs(base, "state=scheduled")} == {ids["scheduled"],
                                                                  ids["retrying"]}
    assert [j["id"] for j in _jobs(base, "state=retrying")] == [ids["retrying"]]
    assert [j["id"] for j in _jobs(base, "state=unclaimable")] == [ids["ready"]]
    status, _, page = call(f"{base}/jobs?state=scheduled")
    assert status == 200 and b"run at / next attempt" in page and b"retrying" in page


def test_search_by_id_args_error_unique_key_batch_and_time(serve: Served,
                                                           clean_db: str) -> None:
    base = serve()
    failed = failed_job(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        keyed = pgqueue.enqueue(conn, "send", {"order_id": 42}, queue="mail", unique_key="o-42")
        with pgqueue.batch(conn, name="nightly") as batch:
            member = batch.enqueue("send", {"order_id": 7}, queue="mail")
    assert [j["id"] for j in _jobs(base, f"id={failed}")] == [failed]
    assert [j["id"] for j in _jobs(base, "args=" + quote('{"order_id": 42}'))] == [keyed]
    assert [j["id"] for j in _jobs(base, "args=" + quote('{"to": "<b>x</b>"}'))] == [failed]
    assert [j["id"] for j in _jobs(base, "unique_key=o-42")] == [keyed]
    assert [j["id"] for j in _jobs(base, f"batch={batch.id}")] == [member]
    status, _, body = call(f"{base}/api/jobs?error=boom")
    listed = json.loads(body)
    assert status == 200 and listed["searched_since"] is not None
    with psycopg.connect(clean_db) as conn:
        error = pgqueue.get_job(conn, failed).last_error  # type: ignore[union-attr]
    assert error and [j["id"] for j in _jobs(base, "error=" + quote(error[:8].upper()))] \
        == [failed]
    assert _jobs(base, "state=failed&since=2000-01-01T00:00&until=2000-01-02T00:00") == []
    for bad in ("args=%5B1%5D", "args=" + quote('{"a": "\\u0000"}'),
                "args=" + quote('{"a": "\\ud800"}'), "since=yesterday", "id=abc", "state=later"):
        assert call(f"{base}/api/jobs?{bad}")[0] == 400, bad
    status, _, page = call(f"{base}/batches/{batch.id}")
    assert status == 200 and b"nightly" in page
    assert call(f"{base}/batches")[0] == 200 and call(f"{base}/batches/999999")[0] == 404


def test_queue_page_and_api(serve: Served, clean_db: str) -> None:
    base = serve()
    failed_job(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pgqueue.set_concurrency_limit(conn, "mail", 3)
    status, _, page = call(f"{base}/queues/mail")
    assert status == 200
    text = page.decode()
    for fragment in ('id="queue-counts"', 'id="queue-limits"', "3 at once", 'id="failures"',
                     "Retry failed"):
        assert fragment in text, fragment
    status, _, body = call(f"{base}/api/queues/mail")
    queue = json.loads(body)
    assert status == 200 and queue["failed"] == 1 and queue["concurrency_limit"] == 3
    assert call(f"{base}/queues/nowhere")[0] == 404
    assert call(f"{base}/api/queues/nowhere")[0] == 404
    assert call(f"{base}/periodic")[0] == 200


def test_charts_over_a_range(serve: Served, clean_db: str) -> None:
    base = serve()
    failed_job(clean_db)
    for name in ("hour", "day", "week"):
        status, _, body = call(f"{base}/api/charts?range={name}")
        points = json.loads(body)["points"]
        assert status == 200 and sum(p["failed"] for p in points) == 1, name
        status, _, page = call(f"{base}/charts?range={name}")
        assert status == 200 and b'id="chart-failed"' in page and b"<polyline" in page
    assert call(f"{base}/api/charts?range=year")[0] == 400


def test_bulk_actions_confirm_then_act_in_batches(serve: Served, clean_db: str) -> None:
    base = serve()
    failed = [failed_job(clean_db) for _ in range(3)]
    _, _, page = call(f"{base}/jobs?state=failed")
    csrf = page.decode().split('name="csrf" value="')[1].split('"')[0]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    picked = "&".join(f"job={i}" for i in failed[:2])
    status, _, confirm = call(f"{base}/jobs/bulk", "POST", headers=form,
                              raw=f"csrf={csrf}&action=retry&{picked}".encode())
    assert status == 200 and b"Retry 2 jobs?" in confirm
    with psycopg.connect(clean_db) as conn:  # nothing changed before the confirmation
        assert pgqueue.get_job(conn, failed[0]).state == "failed"  # type: ignore[union-attr]
    status, headers, _ = call(f"{base}/jobs/bulk", "POST", headers=form,
                              raw=f"csrf={csrf}&action=retry&confirm=yes&{picked}".encode())
    assert status == 303 and "2+of+2+jobs+retried" in headers["Location"]
    everything = f"csrf={csrf}&action=delete&all=1&f_state=failed&confirm=yes".encode()
    assert call(f"{base}/jobs/bulk", "POST", headers=form,
                raw=everything.replace(b"csrf=" + csrf.encode(), b"csrf=no"))[0] == 403
    status, headers, _ = call(f"{base}/jobs/bulk", "POST", headers=form, raw=everything)
    assert status == 303 and "1+of+1+job+deleted" in headers["Location"]
    status, _, body = call(f"{base}/api/jobs/bulk", "POST",
                           {"action": "cancel", "filter": {"queue": "mail", "state": "queued"}})
    assert status == 200 and json.loads(body)["changed"] == 2, body
    status, _, body = call(f"{base}/api/jobs/bulk", "POST", {"action": "retry", "ids": failed})
    assert status == 200 and json.loads(body) == {"action": "retry", "selected": 3,
                                                  "changed": 2, "skipped": 1, "more": False}
    assert call(f"{base}/api/jobs/bulk", "POST", {"action": "explode", "ids": [1]})[0] == 400
    assert call(f"{base}/api/jobs/bulk", "POST", {"action": "retry"})[0] == 400


def test_read_only_refuses_bulk_actions(serve: Served, clean_db: str) -> None:
    base = serve(read_only=True)
    failed = failed_job(clean_db)
    _, _, page = call(f"{base}/jobs?state=failed")
    assert b"/jobs/bulk" not in page and b'type="checkbox"' not in page
    assert call(f"{base}/api/jobs/bulk", "POST", {"action": "delete", "ids": [failed]})[0] == 403
    with psycopg.connect(clean_db) as conn:
        assert pgqueue.get_job(conn, failed) is not None
