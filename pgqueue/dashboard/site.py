"""Which page answers a GET: the dashboard's pages, each read on one connection."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import unquote

from .. import admin
from ..producer.batches import get_batch, list_batches
from . import api, api_retention, charts, data, page_jobs, page_other, page_queue, pages, summaries
from .data import Conn, JobFilter
from .http import HttpError, Request
from .page_retention import retention_section

__all__ = ["render", "title"]

_JOB = re.compile(r"^/jobs/(\d{1,19})$")
_QUEUE = re.compile(r"^/queues/([^/]{1,200})$")
_BATCH = re.compile(r"^/batches/(\d{1,19})$")
_TITLES = {"/": "Queues", "/jobs": "Jobs", "/workers": "Workers", "/charts": "Charts",
           "/batches": "Batches", "/periodic": "Periodic"}


def title(path: str) -> str:
    if path in _TITLES:
        return _TITLES[path]
    for pattern, name in ((_JOB, "Job"), (_QUEUE, "Queue"), (_BATCH, "Batch")):
        if pattern.match(path):
            return name
    return "Not found"


def render(conn: Conn, request: Request, view: pages.View, now: datetime) -> str:
    """The page's body (the inside of ``<main>``); HttpError 404 when there is none."""
    path = request.path
    if path == "/":
        hour = summaries.finished_series(conn, now - charts.RANGES["hour"].span, 60)
        queues = summaries.queue_rows(conn, now, finished=hour)
        return pages.overview(view, queues, summaries.throughput(hour), now,
                              note=summaries.counts_note(queues, now))
    if path == "/jobs":
        wanted = filter_of(request)
        names = [row["name"] for row in data.fetch(conn, "queue_names_list")]
        return page_jobs.jobs_page(view, data.search_jobs(conn, wanted, now), names, wanted,
                                   now, notice=request.arg("notice") or "")
    if path == "/workers":
        return page_other.workers_page(data.workers(conn), now)
    if path == "/charts":
        span = charts.parse_range(request.arg("range"))
        rows = summaries.finished_series(conn, now - span.span, span.bucket_seconds)
        depth = summaries.depth_series(conn, now - span.span, span.bucket_seconds)
        queues = summaries.queue_rows(conn, now)
        return charts.charts_page(rows, depth, queues, span, now,
                                  note=summaries.counts_note(queues, now))
    if path == "/batches":
        cursor = data.parse_filter({"cursor": request.arg("cursor")}).cursor
        batches = list_batches(conn, limit=50, before_id=cursor)
        return page_other.batches_page(batches, now, batches[-1].id if len(batches) == 50
                                       else None)
    if path == "/periodic":
        return page_other.periodic_page(data.periodic(conn), now)
    match = _JOB.match(path)
    if match:
        job = api.job_or_404(conn, int(match[1]))
        return pages.job_page(view, job, now, request.arg("notice") or "")
    match = _QUEUE.match(path)
    if match:
        return _queue(conn, view, unquote(match[1]), now)
    match = _BATCH.match(path)
    if match:
        batch = get_batch(conn, int(match[1]))
        if batch is None:
            raise HttpError(404, f"no batch has id {match[1]}")
        jobs = data.search_jobs(conn, JobFilter(batch_id=batch.id), now)
        return page_other.batch_page(view, batch, jobs, now)
    raise HttpError(404, f"no page at {path}")


def filter_of(request: Request) -> JobFilter:
    limit = api.parse_int(request.arg("limit"), "limit", default=admin.DEFAULT_LIST_LIMIT)
    return data.parse_filter({name: request.arg(name) for name in data.FILTER_ARGS},
                             limit=limit or 0, tags=request.query.get("tag", []))


def _queue(conn: Conn, view: pages.View, name: str, now: datetime) -> str:
    span = charts.RANGES["hour"]
    rows = summaries.finished_series(conn, now - span.span, span.bucket_seconds, name)
    found = summaries.queue_rows(conn, now, name, finished=rows)
    if not found:
        raise HttpError(404, f"no queue is named {name!r}")
    queue = found[0]
    limits = {**queue, **data.queue_limits(conn, name)}
    failures = data.search_jobs(conn, JobFilter(queue=name, state="failed", limit=10), now)
    jobs = data.search_jobs(conn, JobFilter(queue=name), now)
    # Without their last hour of jobs (the workers page's, a scan of that hour of history).
    serving = [w for w in data.fetch(conn, "admin_workers_list") if name in w["queues"]]
    retention = retention_section(view, name, api_retention.retention_of(conn, name))
    return page_queue.queue_page(view, queue, limits, rows, span, failures, jobs, serving, now,
                                 note=summaries.counts_note(found, now), retention=retention)
