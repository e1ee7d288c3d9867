"""A queue's retention through the dashboard's API and queue page: read, set, reset,
bad input, read-only mode, the form's CSRF."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.retention import MAX_KEEP_SECONDS
from tests.integration.test_api import Served, call, failed_job

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def serve(dashboards: Callable[..., int]) -> Served:
    return lambda **options: f"http://127.0.0.1:{dashboards(**options)}"


def overrides(dsn: str, queue: str) -> dict[str, timedelta | None]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return pgqueue.get_retention(conn, queue)


def test_get_shows_overrides_and_the_built_in_defaults(serve: Served, clean_db: str) -> None:
    base = serve()
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pgqueue.set_retention(conn, "mail", failed="off", succeeded="90d")
    status, _, body = call(f"{base}/api/queues/mail/retention")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["queue"] == "mail" and "--retention" in answer["note"]
    assert answer["retention"] == {
        "succeeded": {"keep": "90d", "keep_seconds": 90 * 86400.0, "source": "queue"},
        "cancelled": {"keep": "1w", "keep_seconds": 7 * 86400.0, "source": "default"},
        "failed": {"keep": "off", "keep_seconds": None, "source": "queue"},
    }


def test_post_sets_and_resets_states_given(serve: Served, clean_db: str) -> None:
    base = serve()
    status, _, body = call(f"{base}/api/queues/audit/retention", "POST",
                           {"succeeded": "12h", "cancelled": 3600, "failed": "off"})
    assert status == 200, body
    assert json.loads(body)["retention"]["cancelled"]["keep"] == "1h"
    assert overrides(clean_db, "audit") == {"succeeded": timedelta(hours=12),
                                            "cancelled": timedelta(hours=1), "failed": None}
    status, _, body = call(f"{base}/api/queues/audit/retention", "POST",
                           {"failed": "default"})
    assert status == 200, body
    assert json.loads(body)["retention"]["failed"]["source"] == "default"
    assert overrides(clean_db, "audit") == {"succeeded": timedelta(hours=12),
                                            "cancelled": timedelta(hours=1)}


@pytest.mark.parametrize(("body", "says"), [
    ({"succeeded": "7", "failed": "off"}, "unit"),
    ({"failed": "off", "succeeded": 10}, "1 minute"),
    ({"failed": "off", "succeeded": True}, "succeeded must be"),
    ({"failed": "off", "succeeded": None}, "succeeded must be"),
    ({"failed": "off", "running": "1d"}, "unknown fields: running"),
    ({}, "at least one"),
    (["failed"], "JSON object"),
])
def test_bad_values_are_a_400_and_change_nothing(serve: Served, clean_db: str,
                                                 body: Any, says: str) -> None:
    base = serve()
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pgqueue.set_retention(conn, "mail", failed="30d")
    status, _, answer = call(f"{base}/api/queues/mail/retention", "POST", body)
    assert status == 400, answer
    assert says in json.loads(answer)["error"]
    assert overrides(clean_db, "mail") == {"failed": timedelta(days=30)}


def test_the_longest_retention_is_what_the_database_holds(serve: Served,
                                                         clean_db: str) -> None:
    base = serve()
    status, _, body = call(f"{base}/api/queues/mail/retention", "POST",
                           {"succeeded": MAX_KEEP_SECONDS})
    assert status == 200, body
    assert overrides(clean_db, "mail") == {"succeeded": timedelta(seconds=MAX_KEEP_SECONDS)}
    status, _, body = call(f"{base}/api/queues/mail/retention", "POST",
                           {"succeeded": MAX_KEEP_SECONDS + 1})
    assert status == 400 and "100 years" in json.loads(body)["error"]
    assert overrides(clean_db, "mail") == {"succeeded": timedelta(seconds=MAX_KEEP_SECONDS)}


def test_bad_queue_name_and_method(serve: Served, clean_db: str) -> None:
    base = serve()
    assert call(f"{base}/api/queues/no%20spaces/retention")[0] == 400
    assert call(f"{base}/api/queues/no%20spaces/retention", "POST", {"failed": "1d"})[0] == 400
    assert call(f"{base}/api/queues/mail/retention", "DELETE")[0] == 405
    status, _, body = call(f"{base}/api/queues/mail/retention", "POST", raw=b"failed=1d",
                           headers=FORM)
    assert status == 415, body


def test_read_only_shows_retention_and_refuses_changes(serve: Served, clean_db: str) -> None:
    base = serve(read_only=True)
    failed_job(clean_db)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pgqueue.set_retention(conn, "mail", failed="90d")
    assert call(f"{base}/api/queues/mail/retention")[0] == 200
    assert call(f"{base}/api/queues/mail/retention", "POST", {"failed": "1d"})[0] == 403
    assert call(f"{base}/queues/mail/retention", "POST", raw=b"failed=1d",
                headers=FORM)[0] == 403
    status, _, page = call(f"{base}/queues/mail")
    assert status == 200
    text = page.decode()
    assert 'id="queue-retention"' in text and "90d" in text
    assert "retention-form" not in text and "/queues/mail/retention" not in text
    assert overrides(clean_db, "mail") == {"failed": timedelta(days=90)}


def test_queue_page_form_sets_and_resets(serve: Served, clean_db: str) -> None:
    base = serve()
    failed_job(clean_db)
    _, _, page = call(f"{base}/queues/mail")
    text = page.decode()
    assert 'id="retention-form"' in text and 'id="retention-reset"' in text
    assert 'data-retention="failed"><td>failed</td><td>30d</td>' in text
    csrf = text.split('name="csrf" value="')[1].split('"')[0]
    path = f"{base}/queues/mail/retention"
    assert call(path, "POST", raw=b"csrf=wrong&failed=off", headers=FORM)[0] == 403
    assert call(path, "POST", raw=f"csrf={csrf}&failed=off".encode(),
                headers={**FORM, "Origin": "http://evil.example"})[0] == 403
    assert overrides(clean_db, "mail") == {}
    status, _, body = call(path, "POST", raw=f"csrf={csrf}&failed=7&succeeded=1d".encode(),
                           headers=FORM)
    assert status == 400 and b"unit" in body
    assert overrides(clean_db, "mail") == {}
    status, headers, _ = call(path, "POST",
                              raw=f"csrf={csrf}&succeeded=&failed=off".encode(), headers=FORM)
    assert status == 303 and headers["Location"] == "/queues/mail"
    assert overrides(clean_db, "mail") == {"failed": None}
    text = call(f"{base}/queues/mail")[2].decode()
    assert 'data-retention="failed"><td>failed</td><td>off</td>' in text
    status, _, _ = call(path, "POST", raw=f"csrf={csrf}&reset=1".encode(), headers=FORM)
    assert status == 303
    assert overrides(clean_db, "mail") == {}


def test_openapi_lists_the_retention_routes(serve: Served) -> None:
    base = serve()
    paths = json.loads(call(f"{base}/api/openapi.json")[2])["paths"]
    assert set(paths["/api/queues/{queue}/retention"]) == {"get", "post"}
