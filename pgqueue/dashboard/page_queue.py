"""One queue's page: counts, lag, limits, pause state, throughput, failures, jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .charts import Range, line_chart, series_by_queue
from .data import JobFilter, JobList
from .page_jobs import job_table
from .pages import View, button, count_text, esc, link

__all__ = ["queue_page"]

_COUNTS = (("ready", "ready"), ("scheduled", "scheduled"), ("running", "running"),
           ("blocked", "blocked"), ("unclaimable", "unclaimable"), ("failed", "failed"),
           ("succeeded_1h", None))


def queue_page(view: View, queue: Mapping[str, Any], limits: Mapping[str, Any],
               chart_rows: Sequence[Mapping[str, Any]], span: Range, failures: JobList,
               jobs: JobList, serving: Sequence[Mapping[str, Any]], now: datetime, *,
               note: str = "", retention: str = "") -> str:
    name = str(queue["queue"])
    paused = bool(queue.get("paused"))
    state = ("<span class=\"pill bad\" id=\"queue-state\">paused</span>" if paused
             else "<span class=\"pill ok\" id=\"queue-state\">active</span>")
    actions = []
    if view.actions and "pause_queue" in view.controls:
        verb = "resume" if paused else "pause"
        actions.append(button(view, f"/queues/{name}/{verb}", verb.capitalize()))
    if view.actions and queue.get("failed"):
        actions.append(button(view, f"/queues/{name}/retry-failed", "Retry failed"))
    counts = "".join(
        f"<div class=\"stat\" data-stat=\"{key}\"><span class=\"label\">{key.replace('_', ' ')}"
        f"</span><a class=\"value\" href=\"{esc(link('/jobs', queue=name, state=kind))}\">"
        f"{esc(count_text(queue, key))}</a></div>" if kind else
        f"<div class=\"stat\" data-stat=\"{key}\"><span class=\"label\">succeeded last hour"
        f"</span><span class=\"value\">{int(queue.get(key) or 0)}</span></div>"
        for key, kind in _COUNTS)
    counts += (f"<div class=\"stat\" data-stat=\"lag\"><span class=\"label\">lag</span>"
               f"<span class=\"value\">{float(queue.get('lag_seconds') or 0):.1f} s</span></div>")
    chart = line_chart({"succeeded": series_by_queue(chart_rows, span, now, "succeeded")
                        .get(name, []),
                        "failed": series_by_queue(chart_rows, span, now, "failed").get(name, [])},
                       title="Finished per minute, last hour", unit="jobs/min",
                       chart_id="queue-throughput")
    workers = ", ".join(f"{w['host']}:{w['pid']} ({w['busy']}/{w['concurrency']})"
                        for w in serving) or "none: no registered worker takes this queue"
    return (f"<h1>Queue {esc(name)} {state}</h1><div class=\"actions\">{''.join(actions)}</div>"
            f"<div class=\"stats\" id=\"queue-counts\">{counts}</div>"
            + (f"<p class=\"muted\" id=\"counts-as-of\">{esc(note)}</p>" if note else "") +
            f"<h2>Limits</h2>{limits_table(limits)}{retention}"
            f"<p>Workers: <span id=\"queue-workers\">{esc(workers)}</span></p>{chart}"
            f"<h2>Recent failures</h2>"
            f"{job_table(view, failures, JobFilter(queue=name, state='failed'), now, 'failures')}"
            f"<h2>Jobs</h2>{job_table(view, jobs, JobFilter(queue=name), now, 'jobs')}"
            f"<p><a href=\"{esc(link('/jobs', queue=name))}\">All jobs of {esc(name)} →</a></p>")


def limits_table(limits: Mapping[str, Any]) -> str:
    """One row per limit: what is set and what it counts now."""
    rows = []
    concurrency = limits.get("concurrency_limit")
    rows.append(("concurrency (all workers)",
                 f"{concurrency} at once" if concurrency else "none",
                 f"{limits.get('running', 0)} running"))
    rate, period = limits.get("rate_limit"), limits.get("rate_period")
    rows.append(("rate", f"{rate} per {_fmt_period(period)}" if rate else "none",
                 f"{limits.get('claims', 0)} started in the window" if rate else ""))
    rows.append(("paused", "yes" if limits.get("paused") else "no",
                 f"since {esc(limits['paused_at'].isoformat(timespec='seconds'))}"
                 if limits.get("paused_at") else ""))
    body = "".join(f"<tr data-limit=\"{esc(k)}\"><td>{esc(k)}</td><td>{esc(v)}</td>"
                   f"<td class=\"muted\">{n}</td></tr>" for k, v, n in rows)
    return (f"<table class=\"grid limits\" id=\"queue-limits\"><thead><tr><th>limit</th>"
            f"<th>set</th><th>now</th></tr></thead><tbody>{body}</tbody></table>")


def _fmt_period(period: Any) -> str:
    seconds = float(period or 0)
    return f"{seconds:g} s" if seconds != 1 else "second"
