"""The API's job search, one queue, charts and bulk actions (see :mod:`.api` for the rest)."""

from __future__ import annotations

from typing import Any

from . import api, bulk, charts, data, site, summaries
from .data import Conn
from .http import HttpError, Request, Response
from .pages import utc_now

__all__ = ["get_charts", "get_queue", "list_jobs", "post_bulk"]

_BULK_FIELDS = {"action", "ids", "filter"}


def list_jobs(conn: Conn, request: Request) -> Response:
    listed = data.search_jobs(conn, site.filter_of(request), utc_now())
    return Response.json({"jobs": listed.jobs, "next_cursor": listed.next_cursor,
                          "searched_since": listed.window,
                          "live_searched_from_id": listed.live_from_id})


def get_queue(conn: Conn, request: Request, name: str) -> Response:
    queue = data.queue_detail(conn, name)
    if queue is None:
        raise HttpError(404, f"no queue is named {name[:200]!r}")
    return Response.json({**queue, **data.queue_limits(conn, name)})


def get_charts(conn: Conn, request: Request) -> Response:
    span = charts.parse_range(request.arg("range"))
    queue = request.arg("queue")
    if queue is not None:
        data.parse_filter({"queue": queue})
    now = utc_now()
    rows = summaries.finished_series(conn, now - span.span, span.bucket_seconds, queue)
    depth = summaries.depth_series(conn, now - span.span, span.bucket_seconds, queue)
    return Response.json({"range": span.name, "bucket_seconds": span.bucket_seconds,
                          "points": [{**r, "duration_percentiles": _percentiles(r)}
                                     for r in rows],
                          "depth": depth})


def post_bulk(conn: Conn, request: Request) -> Response:
    """``{"action": "retry"|"cancel"|"delete", "ids": [...]}`` or ``"filter": {...}``
    (the job list's query arguments): the work done, in batches."""
    body = request.json()
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object with 'action' and 'ids' or 'filter'")
    unknown = sorted(set(body) - _BULK_FIELDS)
    if unknown:
        raise HttpError(400, f"unknown fields: {', '.join(unknown)}")
    action = bulk.check_action(body.get("action"))
    if action == "cancel" and "cancel" not in api.controls():
        raise HttpError(404, "cancel is not available in this version of pgqueue")
    ids, wanted = body.get("ids"), body.get("filter")
    if (ids is None) == (wanted is None):
        raise HttpError(400, "give exactly one of 'ids' (a list of job ids) or 'filter'")
    if ids is not None:
        if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= 2**63 - 1
                for i in ids):
            raise HttpError(400, "ids must be a list of job ids (whole numbers from 1)")
        chosen, more = bulk.select_ids(conn, ids=ids, now=utc_now())
    else:
        filtered = _bulk_filter(wanted)
        chosen, more = bulk.select_ids(conn, wanted=filtered, now=utc_now())
    result = bulk.apply(conn, action, chosen, more=more)
    return Response.json({"action": action, "selected": result.selected,
                          "changed": result.changed, "skipped": result.skipped,
                          "more": result.more})


def _bulk_filter(wanted: Any) -> data.JobFilter:
    """The ``filter`` of a bulk action: the job list's query arguments as strings, but
    ``tag``, which is one tag or a list of them."""
    tags = wanted.get("tag", []) if isinstance(wanted, dict) else []
    tags = [tags] if isinstance(tags, str) else tags
    if not isinstance(wanted, dict) or not isinstance(tags, list) or not all(
            isinstance(k, str) and (isinstance(v, str) or k == "tag")
            for k, v in wanted.items()) or not all(isinstance(t, str) for t in tags):
        raise HttpError(400, "filter must be an object of query arguments (strings; 'tag' "
                             "may be a list), such as {\"queue\": \"email\", \"state\": "
                             "\"failed\", \"tag\": [\"customer:42\"]}")
    return data.parse_filter({k: v or None for k, v in wanted.items()
                              if k in data.FILTER_ARGS}, tags=tags)


def _percentiles(row: dict[str, Any]) -> dict[str, float | None]:
    values = list(row.get("duration_percentiles") or [None, None, None])
    return dict(zip(("p50", "p95", "p99"), values, strict=False))
