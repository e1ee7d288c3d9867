"""Workers, batches and periodic schedules."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .data import JobFilter, JobList
from .page_jobs import job_table
from .pages import View, esc, moment, queue_link

__all__ = ["batch_page", "batches_page", "periodic_page", "workers_page"]


def workers_page(workers: Sequence[dict[str, Any]], now: datetime) -> str:
    rows = []
    for w in workers:
        queues = ", ".join(f"<a href=\"{esc(queue_link(q))}\">{esc(q)}</a>" for q in w["queues"])
        leader = "<span class=\"pill ok\">leader</span>" if w["leader"] else ""
        stale = " bad" if float(w["heartbeat_age_seconds"]) > 30 else ""
        rows.append(
            f"<tr data-worker=\"{esc(w['id'])}\"><td>{esc(w['host'])}</td>"
            f"<td class=\"num\">{w['pid']}</td><td>{queues}</td>"
            f"<td class=\"num\">{w['concurrency']}</td><td class=\"num busy\">{w['busy']}</td>"
            f"<td class=\"num done\">{w['done_1h']}</td><td class=\"num\">{w['failed_1h']}</td>"
            f"<td>{moment(w['started_at'], now)}</td>"
            f"<td class=\"num{stale}\">{float(w['heartbeat_age_seconds']):.1f} s</td>"
            f"<td>{leader}</td><td class=\"muted\">{esc(', '.join(w['tasks']))}</td>"
            f"<td class=\"muted mono\">{esc(w['id'])}</td></tr>")
    if not rows:
        rows.append("<tr><td colspan=\"12\" class=\"muted\">No workers are running.</td></tr>")
    return ("<h1>Workers</h1><table class=\"grid\" id=\"workers\"><thead><tr><th>host</th>"
            "<th>pid</th><th>queues</th><th>concurrency</th><th>busy</th>"
            "<th>done last hour</th><th>failed last hour</th><th>started</th>"
            "<th>heartbeat age</th><th>leader</th><th>tasks</th><th>id</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def batches_page(batches: Sequence[Any], now: datetime, next_cursor: int | None) -> str:
    rows = [
        f"<tr data-batch=\"{b.id}\"><td><a href=\"/batches/{b.id}\">{b.id}</a></td>"
        f"<td>{esc(b.name)}</td><td class=\"num\">{b.total}</td>"
        f"<td>{progress(b)}</td><td class=\"num\">{b.pending}</td>"
        f"<td class=\"num\">{b.running}</td><td class=\"num\">{b.succeeded}</td>"
        f"<td class=\"num bad\">{b.failed}</td><td class=\"num\">{b.cancelled}</td>"
        f"<td>{moment(b.created_at, now)}</td><td>{moment(b.finished_at, now)}</td></tr>"
        for b in batches]
    if not rows:
        rows.append("<tr><td colspan=\"11\" class=\"muted\">No batches yet.</td></tr>")
    more = (f"<p><a class=\"more\" href=\"/batches?cursor={next_cursor}\">Older batches →</a></p>"
            if next_cursor else "")
    return ("<h1>Batches</h1><table class=\"grid\" id=\"batches\"><thead><tr><th>id</th>"
            "<th>name</th><th>total</th><th>progress</th><th>pending</th><th>running</th>"
            "<th>succeeded</th><th>failed</th><th>cancelled</th><th>created</th>"
            f"<th>finished</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{more}")


def batch_page(view: View, batch: Any, jobs: JobList, now: datetime) -> str:
    facts = [("name", esc(batch.name)), ("total", batch.total), ("pending", batch.pending),
             ("running", batch.running), ("succeeded", batch.succeeded),
             ("failed", batch.failed), ("cancelled", batch.cancelled),
             ("created", moment(batch.created_at, now)),
             ("started", moment(batch.started_at, now)),
             ("sealed", moment(batch.sealed_at, now)),
             ("finished", moment(batch.finished_at, now)),
             ("callback", esc(batch.callback_task) +
              (f" (<a href=\"/jobs/{batch.callback_job_id}\">job {batch.callback_job_id}</a>)"
               if batch.callback_job_id else ""))]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts)
    return (f"<h1>Batch {batch.id}</h1>{progress(batch)}<dl class=\"facts\" id=\"batch\">{dl}"
            f"</dl><h2>Jobs</h2>"
            f"{job_table(view, jobs, JobFilter(batch_id=batch.id), now, 'jobs')}")


def progress(batch: Any) -> str:
    """A bar of finished parts as SVG (the CSP allows no inline styles)."""
    total = max(1, int(batch.total))
    parts = [("ok", batch.succeeded), ("bad", batch.failed), ("cancelled", batch.cancelled),
             ("run", batch.running)]
    x, bars = 0.0, []
    for css, n in parts:
        if n:
            width = 100 * int(n) / total
            bars.append(f"<rect class=\"{css}\" x=\"{x:.1f}\" y=\"0\" width=\"{width:.1f}\" "
                        "height=\"10\"/>")
            x += width
    done = int(batch.succeeded) + int(batch.failed) + int(batch.cancelled)
    return (f"<svg class=\"progress\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" "
            f"role=\"img\" aria-label=\"{done} of {batch.total} finished\">"
            f"<title>{done} of {batch.total} finished</title>{''.join(bars)}</svg>")


def periodic_page(schedules: Sequence[dict[str, Any]], now: datetime) -> str:
    rows = [
        f"<tr data-schedule=\"{esc(p['name'])}\"><td>{esc(p['name'])}</td>"
        f"<td class=\"mono\">{esc(p['cron'])}</td><td>{esc(p['task'])}</td>"
        f"<td><a href=\"{esc(queue_link(p['queue']))}\">{esc(p['queue'])}</a></td>"
        f"<td class=\"mono\">{esc(json.dumps(p['args'], ensure_ascii=False)[:80])}</td>"
        f"<td>{esc(p['on_missed'])}</td><td>{moment(p['last_tick'], now)}</td>"
        f"<td>{moment(p['next_tick'], now)}</td><td>"
        + (f"<a href=\"/jobs/{p['last_job_id']}\">{p['last_job_id']}</a> "
           f"<span class=\"pill {esc(p['last_job_state'])}\">{esc(p['last_job_state'])}</span>"
           if p["last_job_id"] else "") + "</td></tr>"
        for p in schedules]
    if not rows:
        rows.append("<tr><td colspan=\"9\" class=\"muted\">No periodic schedules: a worker "
                    "records its registry's schedules when it starts.</td></tr>")
    return ("<h1>Periodic</h1><table class=\"grid\" id=\"periodic\"><thead><tr><th>name</th>"
            "<th>cron</th><th>task</th><th>queue</th><th>args</th><th>on missed</th>"
            "<th>last tick</th><th>next tick</th><th>last job</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")
