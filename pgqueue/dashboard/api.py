"""The JSON API under ``/api/``: what each endpoint reads, validates and answers.

Every handler takes a connection (autocommit: each action commits at once) and
the request, and returns a :class:`Response` or raises :class:`HttpError`. Input
errors are 400 with a message naming the field; unknown ids are 404; an action
that cannot apply to the job's state is 409; an enqueue into a queue at its
``max_depth`` is 429 with ``Retry-After`` (503 already means "database unavailable").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import psycopg

from .. import admin
from ..errors import InvalidJobError, QueueFullError
from ..producer.enqueue import enqueue
from .http import HttpError, Request, Response

__all__ = ["controls", "parse_int", "queue_rows"]

Conn = psycopg.Connection[Any]

#: What ``Retry-After`` says when a queue is full: a worker drains hundreds of jobs a
#: second, so a few seconds usually frees room without making clients hammer the API.
QUEUE_FULL_RETRY_AFTER_SECONDS = 5

_ENQUEUE_OPTIONS = ("queue", "priority", "delay", "max_attempts", "unique_key", "tags", "meta",
                    "unique_for", "debounce", "on_conflict")
_ENQUEUE_FIELDS = {"task", "args", *_ENQUEUE_OPTIONS}
_RETRY_STATUS = {
    admin.RetryOutcome.RETRIED: 200,
    admin.RetryOutcome.NOT_FOUND: 404,
    admin.RetryOutcome.LIVE: 409,
    admin.RetryOutcome.SUCCEEDED: 409,
    admin.RetryOutcome.UNIQUE_KEY_TAKEN: 409,
}
_RETRY_MESSAGE = {
    admin.RetryOutcome.RETRIED: "queued again",
    admin.RetryOutcome.NOT_FOUND: "no job has this id",
    admin.RetryOutcome.LIVE: "the job is queued or running already",
    admin.RetryOutcome.SUCCEEDED: "the job succeeded; only failed or cancelled jobs are retried",
    admin.RetryOutcome.UNIQUE_KEY_TAKEN: "a live job holds this job's unique key",
}


def controls() -> dict[str, Callable[..., Any]]:
    """Cancel, pause and resume, when this version of pgqueue has them."""
    import pgqueue

    found = {name: getattr(pgqueue, name, None)
             for name in ("cancel", "pause_queue", "resume_queue")}
    return {name: fn for name, fn in found.items() if callable(fn)}


def parse_int(text: str | None, name: str, *, default: int | None = None) -> int | None:
    if text is None:
        return default
    try:
        return int(text, 10)
    except ValueError:
        raise HttpError(400, f"{name} must be an integer, got {text[:40]!r}") from None


def queue_rows(conn: Conn) -> list[dict[str, Any]]:
    return admin.list_queues(conn)


def get_queues(conn: Conn, request: Request) -> Response:
    return Response.json({"queues": queue_rows(conn)})


def job_or_404(conn: Conn, job_id: int) -> admin.JobDetail:
    try:
        job = admin.get_job(conn, job_id)
    except admin.InvalidArgumentError as exc:
        raise HttpError(400, str(exc)) from None
    if job is None:
        raise HttpError(404, f"no job has id {job_id}")
    return job


def get_job(conn: Conn, request: Request, job_id: int) -> Response:
    job = job_or_404(conn, job_id)
    return Response.json({**dataclasses.asdict(job), "trace_id": job.trace_id})


def retry_job(conn: Conn, job_id: int) -> tuple[int, dict[str, Any]]:
    """Retry one job: (HTTP status, payload)."""
    try:
        outcome = admin.retry(conn, job_id)
    except admin.InvalidArgumentError as exc:
        raise HttpError(400, str(exc)) from None
    payload = {"id": job_id, "outcome": outcome.value, "message": _RETRY_MESSAGE[outcome]}
    return _RETRY_STATUS[outcome], payload


def post_retry(conn: Conn, request: Request, job_id: int) -> Response:
    status, payload = retry_job(conn, job_id)
    if status == 200:
        return Response.json(payload)
    return Response.json({**payload, "error": payload["message"]}, status)


def post_retry_failed(conn: Conn, request: Request, queue: str) -> Response:
    try:
        count = admin.retry_failed(conn, queue)
    except admin.InvalidArgumentError as exc:
        raise HttpError(400, str(exc)) from None
    return Response.json({"queue": queue, "retried": count})


def post_enqueue(conn: Conn, request: Request) -> Response:
    body = request.json()
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object with at least 'task'")
    unknown = sorted(set(body) - _ENQUEUE_FIELDS)
    if unknown:
        raise HttpError(400, f"unknown fields: {', '.join(unknown)}")
    if "task" not in body:
        raise HttpError(400, "'task' is required")
    options = {key: body[key] for key in _ENQUEUE_OPTIONS if body.get(key) is not None}
    try:
        job_id = enqueue(conn, body["task"], body.get("args"), **options)
    except QueueFullError as exc:
        response = Response.json({"error": str(exc), "queue": exc.queue,
                                  "max_depth": exc.max_depth, "depth": exc.depth}, 429)
        response.headers["Retry-After"] = str(QUEUE_FULL_RETRY_AFTER_SECONDS)
        return response
    except InvalidJobError as exc:
        raise HttpError(400, str(exc)) from None
    return Response.json({"id": job_id}, 201)


def get_workers(conn: Conn, request: Request) -> Response:
    return Response.json({"workers": [dataclasses.asdict(w) for w in admin.list_workers(conn)]})


def control_result(value: Any) -> Any:
    """A control function's answer as JSON (an enum, a bool, text or a dataclass)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return getattr(value, "value", value)


def post_cancel(conn: Conn, request: Request, job_id: int) -> Response:
    job_or_404(conn, job_id)
    result = controls()["cancel"](conn, job_id)
    return Response.json({"id": job_id, "outcome": control_result(result)})


def post_pause(conn: Conn, request: Request, queue: str, *, pause: bool) -> Response:
    name = "pause_queue" if pause else "resume_queue"
    try:
        admin.validate_queue_name(queue)
    except admin.InvalidArgumentError as exc:
        raise HttpError(400, str(exc)) from None
    result = controls()[name](conn, queue)
    return Response.json({"queue": queue, "paused": pause, "changed": control_result(result)})
