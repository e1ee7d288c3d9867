"""A queue's retention in the API and the dashboard: read it, change it, reset it.

The dashboard cannot know the workers' ``--retention`` (a worker option), so a
state without a queue override is shown with the built-in default and marked
``"source": "default"``: the workers' option may replace it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import admin
from ..errors import InvalidArgumentError, InvalidJobError
from ..producer.queue_retention import DEFAULT, get_retention, set_retention
from ..retention import DEFAULT_RETENTION, FINAL_STATES, format_keep
from .data import Conn
from .http import HttpError, Request, Response

__all__ = ["DEFAULT_NOTE", "change", "get_retention_api", "post_retention", "retention_of"]

DEFAULT_NOTE = ("a state without a queue override follows the workers' --retention, "
                "shown here with its built-in default; the dashboard cannot see the "
                "workers' option")


def retention_of(conn: Conn, queue: str) -> dict[str, Any]:
    """``{"queue", "retention": {state: {keep, keep_seconds, source}}, "note"}``."""
    overrides = get_retention(conn, queue)
    states: dict[str, Any] = {}
    for state in FINAL_STATES:
        if state in overrides:
            kept = overrides[state]
            seconds = None if kept is None else kept.total_seconds()
            source = "queue"
        else:
            seconds, source = DEFAULT_RETENTION.of(state), "default"
        states[state] = {"keep": format_keep(seconds), "keep_seconds": seconds,
                         "source": source}
    return {"queue": queue, "retention": states, "note": DEFAULT_NOTE}


def change(conn: Conn, queue: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``{state: duration | seconds | "off" | "default"}`` in one transaction;
    HttpError 400 (nothing changed) on a bad field or value."""
    unknown = sorted(set(given) - set(FINAL_STATES))
    if unknown:
        raise HttpError(400, f"unknown fields: {', '.join(map(str, unknown))}; the states "
                             f"are {', '.join(FINAL_STATES)}")
    for state, value in given.items():
        if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
            raise HttpError(400, f"{state} must be a duration such as '7d', a number of "
                                 f"seconds, 'off' or 'default'")
    try:
        admin.validate_queue_name(queue)
        with conn.transaction():
            set_retention(conn, queue, **given)
    except (InvalidArgumentError, InvalidJobError) as exc:  # the latter: the database's checks
        raise HttpError(400, str(exc)) from None
    return retention_of(conn, queue)


def get_retention_api(conn: Conn, request: Request, queue: str) -> Response:
    try:
        admin.validate_queue_name(queue)
    except InvalidArgumentError as exc:
        raise HttpError(400, str(exc)) from None
    return Response.json(retention_of(conn, queue))


def post_retention(conn: Conn, request: Request, queue: str) -> Response:
    """Body ``{"succeeded": "90d", "failed": "off", "cancelled": "default"}``: the
    states given change, the others stay."""
    body = request.json()
    if not isinstance(body, dict) or not body:
        raise HttpError(400, "the body must be a JSON object with at least one of "
                             f"{', '.join(FINAL_STATES)}: a duration such as '7d', "
                             f"seconds, 'off' or '{DEFAULT}'")
    return Response.json(change(conn, queue, body))


def form_changes(form: Mapping[str, str]) -> dict[str, str]:
    """The dashboard form's fields: blank ones stay; ``reset`` sets every state back."""
    if form.get("reset") == "1":
        return {state: DEFAULT for state in FINAL_STATES}
    changes = {s: form[s].strip() for s in FINAL_STATES if form.get(s, "").strip()}
    if not changes:
        raise HttpError(400, "give a retention for at least one state (such as 7d, off or "
                             "default), or reset")
    return changes
