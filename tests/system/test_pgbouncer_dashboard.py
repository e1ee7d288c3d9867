"""The dashboard through a real PgBouncer: ``make_server(pooler="transaction")``
answers every page and API call, from several clients at once, without a 500
(a pooled server session never holds a prepared statement of its pool's)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.integration.test_admin import finish
from tests.integration.test_api import call
from tests.support import serving_dashboard

pytestmark = pytest.mark.slow

CLIENTS = 4
ROUNDS = 15


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    with ExitStack() as running:
        def start(dsn: str, **options: Any) -> str:
            return f"http://127.0.0.1:{running.enter_context(serving_dashboard(dsn, **options))}"

        yield start


def _failed_jobs(dsn: str, count: int) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = pgqueue.enqueue_many(conn, [{"task": "send", "queue": "mail"}] * count)
        for job_id in ids:
            finish(conn, job_id)
    return ids


def _client_round(base: str, failed: int, client: int) -> list[tuple[str, int]]:
    """Every page and API call once; returns (what, status) of each."""
    statuses: list[tuple[str, int]] = []

    def go(path: str, method: str = "GET", body: Any = None) -> bytes:
        status, _, payload = call(base + path, method, body)
        statuses.append((f"{method} {path}", status))
        return payload

    created = json.loads(go("/api/jobs", "POST", {"task": "send", "queue": f"c{client}",
                                                  "args": {"to": "x"}}))
    assert statuses[-1][1] == 201, (statuses, created)
    job_id = created["id"]
    for path in ("/api/queues", "/api/jobs", "/api/jobs?state=failed&limit=5", "/api/workers",
                 f"/api/jobs/{job_id}", f"/api/jobs/{failed}", "/", "/jobs", "/workers",
                 f"/jobs/{job_id}", "/api/openapi.json"):
        go(path)
    go(f"/api/jobs/{job_id}/cancel", "POST", {})
    go(f"/api/jobs/{failed}/retry", "POST", {})
    go(f"/api/queues/c{client}/pause", "POST", {})
    go(f"/api/queues/c{client}/resume", "POST", {})
    return statuses


@pytest.mark.parametrize("fixture", ["pooled_dsn", "session_pooled_dsn"])
def test_dashboard_api_through_pgbouncer_answers_without_500(
        fixture: str, request: pytest.FixtureRequest, clean_db: str,
        serve: Callable[..., str]) -> None:
    dsn = request.getfixturevalue(fixture)
    pooler = "transaction" if fixture == "pooled_dsn" else "session"
    base = serve(dsn, pooler=pooler)
    failed = _failed_jobs(clean_db, CLIENTS * ROUNDS)
    results: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            for i in range(ROUNDS):
                results.extend(_client_round(base, failed[index * ROUNDS + i], index))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not errors, errors
    assert len(results) == CLIENTS * ROUNDS * 16
    bad = [r for r in results if r[1] >= 500]
    assert not bad, bad[:10]
    assert all(status in (200, 201) for _, status in results), sorted(set(results))[:10]
    with psycopg.connect(clean_db) as conn:
        cancelled = conn.execute("SELECT count(*) FROM pgqueue.finished_jobs "
                                 "WHERE state = 'cancelled'").fetchone()
    assert cancelled == (CLIENTS * ROUNDS,)
