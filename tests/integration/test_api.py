"""The dashboard's HTTP API and pages over a real socket: auth, CSRF, read-only, schema."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.integration.test_admin import finish

Served = Callable[..., str]


@pytest.fixture
def serve(dashboards: Callable[..., int]) -> Served:
    """Start dashboards on free ports; returns their base URLs. Stopped after the test."""
    return lambda **options: f"http://127.0.0.1:{dashboards(**options)}"


def call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    all_headers = {"Content-Type": "application/json"} if body is not None else {}
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def failed_job(dsn: str, queue: str = "mail") -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        job_id = pgqueue.enqueue(conn, "send", {"to": "<b>x</b>"}, queue=queue)
        finish(conn, job_id)
    return job_id


def test_api_lists_gets_and_retries(serve: Served, clean_db: str) -> None:
    base = serve()
    job_id = failed_job(clean_db)
    status, _, body = call(f"{base}/api/queues")
    assert status == 200
    assert json.loads(body)["queues"][0]["failed"] == 1
    status, _, body = call(f"{base}/api/jobs?state=failed")
    assert [j["id"] for j in json.loads(body)["jobs"]] == [job_id]
    status, _, body = call(f"{base}/api/jobs/{job_id}")
    assert json.loads(body)["errors"][0]["traceback"].startswith("Traceback")
    status, _, body = call(f"{base}/api/jobs/{job_id}/retry", "POST", {})
    assert (status, json.loads(body)["outcome"]) == (200, "retried")
    status, _, body = call(f"{base}/api/jobs/{job_id}/retry", "POST", {})
    assert (status, json.loads(body)["outcome"]) == (409, "live")
    assert call(f"{base}/api/jobs/999999999/retry", "POST", {})[0] == 404
    assert call(f"{base}/api/jobs/999999999")[0] == 404


def test_api_enqueue_and_retry_failed(serve: Served, clean_db: str) -> None:
    base = serve()
    status, _, body = call(f"{base}/api/jobs", "POST", {"task": "t", "args": {"a": 1},
                                                        "queue": "q", "delay": 5})
    assert status == 201
    job_id = json.loads(body)["id"]
    assert call(f"{base}/api/jobs/{job_id}")[0] == 200
    for _ in range(2):
        failed_job(clean_db, "q")
    status, _, body = call(f"{base}/api/queues/q/retry-failed", "POST", {})
    assert json.loads(body) == {"queue": "q", "retried": 2}


@pytest.mark.parametrize(("path", "method", "body", "status", "fragment"), [
    ("/api/jobs?state=done", "GET", None, 400, "state must be one of"),
    ("/api/jobs?limit=abc", "GET", None, 400, "limit must be an integer"),
    ("/api/jobs?limit=0", "GET", None, 400, "limit"),
    ("/api/jobs", "POST", {"args": {}}, 400, "'task' is required"),
    ("/api/jobs", "POST", {"task": "t", "colour": 1}, 400, "unknown fields: colour"),
    ("/api/jobs", "POST", {"task": "t", "priority": 10**6}, 400, "priority"),
    ("/api/jobs", "POST", [1], 400, "JSON object"),
    ("/api/jobs/0", "GET", None, 400, "job id"),
    ("/api/nowhere", "GET", None, 404, "no API endpoint"),
    ("/api/queues", "POST", {}, 405, "not allowed"),
])
def test_api_bad_input_is_a_clear_4xx(serve: Served, path: str, method: str, body: Any,
                                      status: int, fragment: str) -> None:
    got, headers, raw = call(serve() + path, method, body)
    assert got == status
    assert fragment in json.loads(raw)["error"]
    assert headers["Content-Type"] == "application/json"


def test_api_post_must_be_json(serve: Served) -> None:
    status, _, body = call(serve() + "/api/jobs", "POST", raw=b"task=t",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and "application/json" in json.loads(body)["error"]
    status, _, _ = call(serve() + "/api/jobs", "POST", raw=b"{", headers={
        "Content-Type": "application/json"})
    assert status == 400


def test_token_protects_pages_api_and_actions(serve: Served, clean_db: str) -> None:
    base = serve(token="s3cret")
    job_id = failed_job(clean_db)
    assert call(f"{base}/api/queues")[0] == 401
    assert call(f"{base}/")[0] == 401
    assert call(f"{base}/api/jobs/{job_id}/retry", "POST", {})[0] == 401
    assert call(f"{base}/api/queues", headers={"Authorization": "Bearer nope"})[0] == 401
    assert call(f"{base}/api/queues", headers={"Authorization": "Bearer s3cret"})[0] == 200
    status, headers, _ = call(f"{base}/jobs?token=s3cret&state=failed")
    assert status == 303 and headers["Location"] == "/jobs?state=failed"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "s3cret" not in cookie
    assert call(f"{base}/jobs", headers={"Cookie": cookie})[0] == 200
    assert call(f"{base}/static/dashboard.js")[0] == 200


def test_read_only_hides_and_refuses_actions(serve: Served, clean_db: str) -> None:
    base = serve(read_only=True)
    job_id = failed_job(clean_db)
    status, _, page = call(f"{base}/jobs/{job_id}")
    assert status == 200 and b"/retry" not in page
    assert call(f"{base}/api/jobs/{job_id}/retry", "POST", {})[0] == 403
    assert call(f"{base}/api/jobs", "POST", {"task": "t"})[0] == 403


def test_form_actions_need_csrf_and_same_site(serve: Served, clean_db: str) -> None:
    base = serve()
    job_id = failed_job(clean_db)
    _, _, page = call(f"{base}/jobs/{job_id}")
    text = page.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x</b>" not in text
    csrf = text.split('name="csrf" value="')[1].split('"')[0]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert call(f"{base}/jobs/{job_id}/retry", "POST", raw=b"csrf=wrong", headers=form)[0] == 403
    cross = {**form, "Sec-Fetch-Site": "cross-site"}
    assert call(f"{base}/jobs/{job_id}/retry", "POST", raw=f"csrf={csrf}".encode(),
                headers=cross)[0] == 403
    evil = {**form, "Origin": "http://evil.example"}
    assert call(f"{base}/jobs/{job_id}/retry", "POST", raw=f"csrf={csrf}".encode(),
                headers=evil)[0] == 403
    status, headers, _ = call(f"{base}/jobs/{job_id}/retry", "POST",
                              raw=f"csrf={csrf}".encode(), headers=form)
    assert status == 303 and headers["Location"].startswith(f"/jobs/{job_id}?notice=")
    with psycopg.connect(clean_db) as conn:
        assert pgqueue.get_job(conn, job_id).state == "queued"  # type: ignore[union-attr]


def test_pages_render_and_partials_refresh(serve: Served, clean_db: str) -> None:
    base = serve()
    failed_job(clean_db)
    for path in ("/", "/jobs", "/jobs?state=failed&queue=mail", "/workers"):
        status, headers, page = call(base + path)
        assert status == 200, path
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        status, _, partial = call(base + "/partial" + path)
        assert status == 200 and "html" in json.loads(partial)
    _, _, page = call(base + "/")
    assert b"<svg" in page and b"Retry failed" in page
    assert call(base + "/jobs/123456789")[0] == 404
    assert call(base + "/static/../app.py")[0] == 404


def test_openapi_schema_property_based(serve: Served, clean_db: str) -> None:
    """schemathesis: no 500s, responses match the schema, bad input is a 4xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    base = serve()
    failed_job(clean_db)
    schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            # Enqueue, and the job list's args filter, may answer 400 to schema-valid
            # args: PostgreSQL cannot store a NUL character in JSON text, which JSON
            # Schema (OpenAPI 3.0) cannot say of an object's keys. Every other check
            # (no 5xx, responses match the schema) still applies.
            excluded = [positive_data_acceptance] if case.operation.path == "/api/jobs" \
                else []
            case.call_and_validate(base_url=base, excluded_checks=excluded)

        check()


def test_cancel_pause_resume_when_available(serve: Served, clean_db: str) -> None:
    if not all(hasattr(pgqueue, n) for n in ("cancel", "pause_queue", "resume_queue")):
        pytest.skip("this checkout has no cancel/pause yet")
    base = serve()
    with psycopg.connect(clean_db, autocommit=True) as conn:
        job_id = pgqueue.enqueue(conn, "send", queue="mail")
    paths = json.loads(call(f"{base}/api/openapi.json")[2])["paths"]
    assert {"/api/jobs/{id}/cancel", "/api/queues/{queue}/pause"} <= set(paths)
    status, _, body = call(f"{base}/api/queues/mail/pause", "POST", {})
    assert status == 200 and json.loads(body)["paused"] is True
    queues = json.loads(call(f"{base}/api/queues")[2])["queues"]
    assert queues[0]["paused"] is True
    _, _, page = call(f"{base}/")
    assert b"/queues/mail/resume" in page and b"paused" in page
    assert call(f"{base}/api/queues/mail/resume", "POST", {})[0] == 200
    status, _, body = call(f"{base}/api/jobs/{job_id}/cancel", "POST", {})
    assert status == 200, body
    status, _, body = call(f"{base}/api/jobs/{job_id}")
    assert json.loads(body)["state"] == "cancelled"
    assert call(f"{base}/api/jobs/999999999/cancel", "POST", {})[0] == 404
