"""The dashboard's HTML. Every value from the database goes through :func:`esc`.

Pages are plain server-rendered HTML; ``dashboard.js`` refreshes the ``<main>``
element from ``/partial/<page>`` without reloading. Action buttons are small POST
forms carrying the CSRF field; they are left out when the dashboard is read-only.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from ..admin import JobDetail
from ..progress import describe_progress, progress_fraction
from .http import CSRF_FIELD, json_default

__all__ = ["View", "ago", "button", "count_text", "esc", "job_page", "layout", "link",
           "login_page", "moment", "overview", "progress_bar", "queue_link", "tag_pills"]

_STATS_COLUMNS = ("ready", "scheduled", "running", "unclaimable", "failed", "succeeded_1h",
                  "lag_seconds")
_LINKED = {"ready": "ready", "scheduled": "scheduled", "running": "running",
           "unclaimable": "unclaimable", "failed": "failed"}


@dataclass(frozen=True)
class View:
    """What every page needs to know about the request and the server."""

    csrf: str
    read_only: bool
    controls: frozenset[str]

    @property
    def actions(self) -> bool:
        return not self.read_only


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def layout(title: str, body: str, *, refresh: str | None = None) -> str:
    refresh_attr = f' data-refresh="{esc(refresh)}"' if refresh else ""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)} · pgqueue</title>"
        "<link rel=\"stylesheet\" href=\"/static/dashboard.css\">"
        "<script src=\"/static/dashboard.js\" defer></script></head><body>"
        "<header><a class=\"brand\" href=\"/\">pgqueue</a><nav>"
        "<a href=\"/\">Queues</a><a href=\"/jobs\">Jobs</a>"
        "<a href=\"/jobs?state=failed\">Failed</a>"
        "<a href=\"/jobs?state=scheduled\">Scheduled</a>"
        "<a href=\"/jobs?state=running\">Running</a><a href=\"/charts\">Charts</a>"
        "<a href=\"/workers\">Workers</a><a href=\"/batches\">Batches</a>"
        "<a href=\"/periodic\">Periodic</a></nav>"
        "<span id=\"status\" class=\"muted\"></span></header>"
        f"<main id=\"main\"{refresh_attr}>{body}</main></body></html>"
    )


def login_page(message: str = "") -> str:
    note = f"<p class=\"error\">{esc(message)}</p>" if message else ""
    return layout("Sign in", (
        "<h1>Sign in</h1>" + note +
        "<form method=\"post\" action=\"/login\" class=\"login\">"
        "<label>Dashboard token <input type=\"password\" name=\"token\" autofocus></label>"
        "<button type=\"submit\">Sign in</button></form>"))


def button(view: View, action: str, label: str, css: str = "") -> str:
    return (f"<form method=\"post\" action=\"{esc(action)}\" class=\"inline\">"
            f"<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{esc(view.csrf)}\">"
            f"<button type=\"submit\" class=\"{esc(css)}\">{esc(label)}</button></form>")


def link(path: str, **params: object) -> str:
    """``path`` with the query arguments given; a list value repeats its argument."""
    given = {k: v for k, v in params.items() if v not in (None, "", [])}
    return path + ("?" + urlencode(given, doseq=True) if given else "")


def tag_pills(tags: Sequence[str] | None) -> str:
    """A job's tags, each a link to the jobs with that tag."""
    return "".join(f"<a class=\"tag\" href=\"{esc(link('/jobs', tag=[t]))}\">{esc(t)}</a>"
                   for t in tags or ())


def queue_link(name: str) -> str:
    return "/queues/" + quote(name, safe="")


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = (now - moment).total_seconds()
    if abs(seconds) < 120:
        text = f"{abs(seconds):.0f} s"
    elif abs(seconds) < 7200:
        text = f"{abs(seconds) / 60:.0f} min"
    elif abs(seconds) < 172800:
        text = f"{abs(seconds) / 3600:.0f} h"
    else:
        text = f"{abs(seconds) / 86400:.0f} d"
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def moment(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "<span class=\"muted\">–</span>"
    return f"<time datetime=\"{esc(moment.isoformat())}\">{esc(ago(moment, now))}</time>"


def sparkline(points: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """Finished jobs per minute over the last hour as a small SVG bar chart."""
    width, height, minutes = 120, 24, 60
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    counts = [0] * minutes
    failed = [0] * minutes
    for point in points:
        index = int((point["minute"] - start).total_seconds() // 60)
        if 0 <= index < minutes:
            counts[index] += int(point["succeeded"]) + int(point["failed"])
            failed[index] += int(point["failed"])
    peak = max(counts) or 1
    bars = []
    for i, (total, bad) in enumerate(zip(counts, failed, strict=True)):
        if total:
            h = max(1.0, total / peak * height)
            bars.append(f"<rect x=\"{i * 2}\" y=\"{height - h:.1f}\" width=\"1.6\" "
                        f"height=\"{h:.1f}\" class=\"{'bad' if bad else 'ok'}\"/>")
    total = sum(counts)
    return (f"<svg class=\"spark\" width=\"{width}\" height=\"{height}\" "
            f"viewBox=\"0 0 {width} {height}\" role=\"img\" "
            f"aria-label=\"{total} finished in the last hour\">"
            f"<title>{total} finished in the last hour (peak {peak}/min)</title>"
            + "".join(bars) + "</svg>")


def overview(view: View, queues: list[dict[str, Any]], charts: Mapping[str, list[Any]],
             now: datetime, *, note: str = "") -> str:
    has_paused = any("paused" in q for q in queues)
    head = "".join(f"<th>{esc(c.replace('_', ' '))}</th>" for c in _STATS_COLUMNS)
    rows = []
    for q in queues:
        name = q["queue"]
        cells = []
        for column in _STATS_COLUMNS:
            value = q.get(column)
            if column in _LINKED and value:
                target = link("/jobs", queue=name, state=_LINKED[column])
                css = "num bad" if column in ("failed", "unclaimable") else "num"
                cells.append(f"<td class=\"{css}\"><a href=\"{esc(target)}\">"
                             f"{esc(count_text(q, column))}</a></td>")
            elif column == "lag_seconds":
                cells.append(f"<td class=\"num\">{float(value or 0):.1f} s</td>")
            else:
                cells.append(f"<td class=\"num\">{esc(value)}</td>")
        paused = ""
        if has_paused:
            paused = "<td>" + ("<span class=\"pill bad\">paused</span>" if q.get("paused")
                               else "<span class=\"pill ok\">active</span>") + "</td>"
        actions = []
        if view.actions and q.get("failed"):
            actions.append(button(view, f"/queues/{name}/retry-failed", "Retry failed"))
        if view.actions and "pause_queue" in view.controls:
            if q.get("paused"):
                actions.append(button(view, f"/queues/{name}/resume", "Resume"))
            else:
                actions.append(button(view, f"/queues/{name}/pause", "Pause"))
        rows.append(
            f"<tr data-queue=\"{esc(name)}\"><td><a href=\"{esc(queue_link(name))}\">"
            f"{esc(name)}</a></td>{''.join(cells)}{_depth_cell(q)}"
            f"<td>{sparkline(charts.get(name, []), now)}</td>{paused}"
            f"<td class=\"actions\">{''.join(actions)}</td></tr>")
    if not rows:
        rows.append(f"<tr><td colspan=\"{len(_STATS_COLUMNS) + 5}\" class=\"muted\">"
                    "No queues yet: enqueue a job to create one.</td></tr>")
    paused_head = "<th>state</th>" if has_paused else ""
    as_of = f"<p class=\"muted\" id=\"counts-as-of\">{esc(note)}</p>" if note else ""
    return (f"<h1>Queues</h1><table class=\"grid\" id=\"queues\"><thead><tr><th>queue</th>"
            f"{head}<th>depth</th><th>last hour</th>{paused_head}<th></th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{as_of}")


def _depth_cell(q: Mapping[str, Any]) -> str:
    """Live jobs, with the queue's max_depth, and a pill when full or past warn_depth."""
    depth, max_depth, warn_depth = q.get("depth"), q.get("max_depth"), q.get("warn_depth")
    shown = esc(count_text(q, "depth"))
    text = shown if max_depth is None else f"{shown} / {esc(max_depth)}"
    pill = ""
    if max_depth is not None and depth is not None and depth >= max_depth:
        pill = " <span class=\"pill bad\" title=\"new jobs are refused\">full</span>"
    elif warn_depth is not None and depth is not None and depth > warn_depth:
        pill = (f" <span class=\"pill queued\" title=\"warn depth {esc(warn_depth)}\">"
                "over warn depth</span>")
    return f"<td class=\"num depth\">{text}{pill}</td>"


def count_text(row: Mapping[str, Any], column: str) -> str:
    """A count as shown: ``10000+`` when a count made with a bound reached it
    (rows without ``bound`` are exact)."""
    value = row.get(column)
    bound = row.get("bound")
    if bound is None or value is None:
        return str(value)
    read = {"ready": ("queued_seen",), "scheduled": ("queued_seen",),
            "unclaimable": ("queued_seen",), "running": ("running",),
            "blocked": ("blocked",), "depth": ("queued_seen", "running", "blocked")}
    reached = any(int(row.get(k) or 0) >= bound for k in read.get(column, ()))
    return f"{value}+" if reached else str(value)


def job_page(view: View, job: JobDetail, now: datetime, notice: str = "") -> str:
    facts = [
        ("state", f"<span class=\"pill {esc(job.state)}\" id=\"job-state\">{esc(job.state)}"
                  "</span>"),
        ("queue", f"<a href=\"{esc(queue_link(job.queue))}\">{esc(job.queue)}</a>"),
        ("task", esc(job.task)),
        ("attempt", f"{job.attempt} of {job.max_attempts}"),
        ("snoozes", f"<span id=\"job-snoozes\">{esc(job.snoozes)}</span>"),
        ("progress", progress_bar(job.progress) or "<span class=\"muted\">–</span>"),
        ("priority", esc(job.priority)),
        ("created", moment(job.created_at, now)),
        ("run at", moment(job.run_at, now)),
        ("started", moment(job.started_at, now)),
        ("heartbeat", moment(job.heartbeat_at, now)),
        ("finished", moment(job.finished_at, now)),
        ("worker", esc(" ".join(str(p) for p in (job.worker_host, job.worker_pid, job.worker_id)
                                if p is not None)) or "<span class=\"muted\">–</span>"),
        ("unique key", esc(job.unique_key) or "<span class=\"muted\">–</span>"),
        ("tags", f"<span id=\"job-tags\">{tag_pills(job.tags)}</span>" if job.tags
                 else "<span class=\"muted\" id=\"job-tags\">–</span>"),
        ("trace id", esc(job.trace_id) or "<span class=\"muted\">–</span>"),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts)
    actions = []
    if view.actions and job.state in ("failed", "cancelled"):
        actions.append(button(view, f"/jobs/{job.id}/retry", "Retry", "primary"))
    if view.actions and "cancel" in view.controls and job.state in ("queued", "running"):
        actions.append(button(view, f"/jobs/{job.id}/cancel", "Cancel", "danger"))
    errors = []
    for error in reversed(job.errors):
        trace = error.get("traceback")
        errors.append(
            "<li><p><strong>attempt " + esc(error.get("attempt")) + "</strong> · "
            + esc(error.get("kind")) + " · " + esc(error.get("at")) + "</p>"
            f"<pre class=\"error-text\">{esc(error.get('message'))}</pre>"
            + (f"<details open><summary>traceback</summary><pre>{esc(trace)}</pre></details>"
               if trace else "") + "</li>")
    errors_html = (f"<ol class=\"errors\">{''.join(errors)}</ol>" if errors
                   else "<p class=\"muted\">No errors.</p>")
    result = ""
    if job.result is not None:
        result = f"<h2>Result</h2><pre>{esc(_pretty(job.result))}</pre>"
    if job.meta:
        result = f"<h2>Meta</h2><pre id=\"job-meta\">{esc(_pretty(job.meta))}</pre>" + result
    note = f"<p class=\"notice\" id=\"notice\">{esc(notice)}</p>" if notice else ""
    return (f"<h1>Job {job.id}</h1>{note}<div class=\"actions\">{''.join(actions)}</div>"
            f"<dl class=\"facts\">{dl}</dl><h2>Args</h2><pre>{esc(_pretty(job.args))}</pre>"
            f"{_meta(job.meta)}{result}<h2>Errors</h2>{errors_html}")


def _meta(meta: Mapping[str, Any] | None) -> str:
    if not meta:
        return ""
    return f"<h2>Meta</h2><pre id=\"job-meta\">{esc(_pretty(meta))}</pre>"


def progress_bar(progress: Mapping[str, Any] | None) -> str:
    """A job's latest progress: a bar (SVG: the CSP allows no inline styles) when
    it has a total, and its text; "" when it reported none."""
    text = describe_progress(progress)
    if not text:
        return ""
    fraction = progress_fraction(progress)
    bar = ""
    if fraction is not None:
        bar = (f"<svg class=\"progress\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" "
               f"role=\"img\" aria-label=\"{esc(text)}\"><title>{esc(text)}</title>"
               f"<rect class=\"run\" x=\"0\" y=\"0\" width=\"{100 * fraction:.1f}\" "
               "height=\"10\"/></svg> ")
    return f"<span class=\"job-progress\">{bar}<span class=\"muted\">{esc(text)}</span></span>"


def error_page(status: int, message: str) -> str:
    return layout(f"{status}", f"<h1>{status}</h1><p class=\"error\">{esc(message)}</p>"
                  "<p><a href=\"/\">Back to the queues</a></p>")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=json_default)
