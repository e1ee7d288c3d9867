"""Jobs with tags for the tag tests: live (queued or running) and in history.

Tags and meta are given to enqueue; history rows are written as a worker's outcome
write does (``pgqueue.finished_row``), so they carry tags and meta as real ones do.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

import pgqueue

Conn = psycopg.Connection[Any]

FINISH = """
WITH done AS (DELETE FROM pgqueue.jobs WHERE id = %(id)s RETURNING *)
INSERT INTO pgqueue.finished_jobs
SELECT (pgqueue.finished_row(d::pgqueue.jobs, %(state)s::pgqueue.job_state, %(error)s,
                             %(errors)s::jsonb)).*
FROM done d
"""

RUN = """
UPDATE pgqueue.jobs
SET state = 'running', attempt = 1, started_at = now(), heartbeat_at = now(),
    worker_id = %(worker)s::uuid
WHERE id = %(id)s
"""


def live(conn: Conn, tags: list[str], *, queue: str = "mail", task: str = "send",
         meta: dict[str, Any] | None = None, unique_key: str | None = None) -> int:
    """A queued job with these tags (and meta), as enqueue stores them; a tag given
    twice is set with SQL (enqueue keeps a tag once)."""
    if len(set(tags)) == len(tags):
        return pgqueue.enqueue(conn, task, {"n": 1}, queue=queue, unique_key=unique_key,
                               tags=tags, meta=meta)
    job_id = pgqueue.enqueue(conn, task, {"n": 1}, queue=queue, unique_key=unique_key)
    conn.execute("UPDATE pgqueue.jobs SET tags = %s, meta = %s::jsonb WHERE id = %s",
                 [tags, json.dumps(meta or {}), job_id])
    return job_id


def running(conn: Conn, tags: list[str], **options: Any) -> int:
    """A job with these tags that a worker (that never answers) holds."""
    job_id = live(conn, tags, **options)
    conn.execute(RUN, {"id": job_id, "worker": "00000000-0000-0000-0000-0000000000aa"})
    return job_id


def finished(conn: Conn, tags: list[str], state: str = "failed", **options: Any) -> int:
    """A job with these tags in history, ended in ``state``."""
    job_id = live(conn, tags, **options)
    error = "ValueError: boom" if state == "failed" else None
    errors = [{"attempt": 1, "kind": "error", "message": error}] if error else []
    conn.execute(FINISH, {"id": job_id, "state": state, "error": error,
                          "errors": json.dumps(errors)})
    return job_id


def states(conn: Conn, ids: list[int]) -> dict[int, str]:
    """Each job's state, live or in history (missing ids left out)."""
    rows = conn.execute("SELECT id, state::text FROM pgqueue.jobs WHERE id = ANY (%(ids)s) "
                        "UNION ALL SELECT id, state::text FROM pgqueue.finished_jobs "
                        "WHERE id = ANY (%(ids)s)", {"ids": ids}).fetchall()
    return {int(i): str(s) for i, s in rows}
