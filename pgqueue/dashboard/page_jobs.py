"""The job list: filters, search, what each live job waits for, and bulk selection.

Each row says what a job is doing (``kind``): ready, scheduled (run_at ahead),
retrying (a failed attempt waiting for its next one), blocked (dependencies),
unclaimable (ready, but no registered worker of its queue knows the task),
running, or its final state; with its next run, how long it has run, its
worker and heartbeat age. The table sits in one POST form: ticking rows (or
"all matching") and pressing an action asks for a confirmation that says how
many jobs it will touch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .data import DEFAULT_SEARCH_ROWS, DEFAULT_SEARCH_WINDOW, KINDS, JobFilter, JobList
from .http import CSRF_FIELD
from .pages import View, esc, link, moment, progress_bar, queue_link, tag_pills

__all__ = ["confirm_page", "hidden_fields", "job_rows", "jobs_page"]

_HEAD = ("", "id", "queue", "task", "state", "attempt", "created", "run at / next attempt",
         "running for", "heartbeat", "worker", "finished", "tags", "last error")


def jobs_page(view: View, listed: JobList, queues: Iterable[str], wanted: JobFilter,
              now: datetime, *, title: str = "Jobs", notice: str = "") -> str:
    note = f"<p class=\"notice\" id=\"notice\">{esc(notice)}</p>" if notice else ""
    window = ""
    if listed.window is not None:
        window = (f"<p class=\"muted\" id=\"window\">History searched from "
                  f"{esc(listed.window.strftime('%Y-%m-%d %H:%M'))} UTC (the last "
                  f"{DEFAULT_SEARCH_WINDOW.days * 24} h, or the newest "
                  f"{DEFAULT_SEARCH_ROWS:,} finished jobs if more finished); set “finished "
                  "since” to search further back.</p>")
    if listed.live_from_id is not None:
        window += (f"<p class=\"muted\" id=\"live-window\">Live jobs searched from id "
                   f"{listed.live_from_id} on (the newest {DEFAULT_SEARCH_ROWS:,} ids); set "
                   "“finished since” (for live jobs: created since) to search every live "
                   "job.</p>")
    more = ""
    if listed.next_cursor is not None:
        target = link("/jobs", **{**wanted.query_args(), "cursor": listed.next_cursor})
        more = f"<p><a class=\"more\" href=\"{esc(target)}\">Older jobs →</a></p>"
    return (f"<h1>{esc(title)}</h1>{note}{filter_form(queues, wanted)}{window}"
            f"{job_table(view, listed, wanted, now, 'jobs')}{more}")


def filter_form(queues: Iterable[str], wanted: JobFilter) -> str:
    given = wanted.query_args()
    queue_opts = "".join(
        f"<option{' selected' if q == wanted.queue else ''}>{esc(q)}</option>" for q in queues)
    state_opts = "".join(
        f"<option{' selected' if s == wanted.state else ''}>{esc(s)}</option>" for s in KINDS)

    def field(label: str, name: str, placeholder: str = "", kind: str = "text") -> str:
        return (f"<label>{esc(label)} <input type=\"{kind}\" name=\"{name}\" "
                f"value=\"{esc(given.get(name, ''))}\" placeholder=\"{esc(placeholder)}\">"
                "</label>")

    # One box per tag given and one more, empty, to add a tag; blanks are ignored.
    tag_boxes = "".join(
        f"<input type=\"text\" name=\"tag\" value=\"{esc(t)}\" placeholder=\"customer:42\">"
        for t in (*wanted.tags, ""))
    mode_opts = "".join(f"<option value=\"{m}\"{' selected' if m == wanted.tags_mode else ''}>"
                        f"{label}</option>" for m, label in (("all", "all of"), ("any", "any of")))

    return (
        "<form method=\"get\" action=\"/jobs\" class=\"filters\" id=\"filters\">"
        f"<label>Queue <select name=\"queue\"><option value=\"\">any</option>{queue_opts}"
        "</select></label>"
        f"<label>State <select name=\"state\" id=\"state\"><option value=\"\">any</option>"
        f"{state_opts}</select></label>"
        + field("Task", "task") + field("Job id", "id") +
        field("Args contain", "args", '{"order_id": 42}') + field("Error text", "error")
        + field("Unique key", "unique_key") + field("Batch", "batch")
        + f"<label>Tags <span class=\"tag-boxes\" id=\"tag-filter\">{tag_boxes}</span></label>"
        f"<label>Tags match <select name=\"tag_mode\">{mode_opts}</select></label>"
        + field("Finished since", "since", "2025-01-31T10:00")
        + field("Until", "until", "2025-01-31T12:00") +
        "<button type=\"submit\">Filter</button>"
        "<a class=\"clear\" href=\"/jobs\">clear</a></form>")


def job_table(view: View, listed: JobList, wanted: JobFilter, now: datetime,
              table_id: str) -> str:
    """The jobs as a table; with actions allowed, inside the bulk form."""
    head = "".join(f"<th>{esc(h)}</th>" for h in _HEAD)
    rows = job_rows(view, listed.jobs, now) or [
        f"<tr><td colspan=\"{len(_HEAD)}\" class=\"muted\">No jobs match.</td></tr>"]
    table = (f"<table class=\"grid\" id=\"{esc(table_id)}\"><thead><tr>{head}</tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>")
    if not view.actions or not listed.jobs:
        return table
    hidden = hidden_fields(wanted.query_args(), prefix="f_")
    return (
        "<form method=\"post\" action=\"/jobs/bulk\" class=\"bulk\" data-bulk>"
        f"<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{esc(view.csrf)}\">{hidden}"
        "<div class=\"bulkbar\"><label><input type=\"checkbox\" name=\"all\" value=\"1\" "
        "data-select-all> all jobs matching this filter</label>"
        "<span class=\"muted\" data-selected-count>none selected</span>"
        "<button type=\"submit\" name=\"action\" value=\"retry\">Retry</button>"
        "<button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button>"
        "<button type=\"submit\" name=\"action\" value=\"delete\" class=\"danger\">Delete"
        "</button></div>" + table + "</form>")


def job_rows(view: View, jobs: list[dict[str, Any]], now: datetime) -> list[str]:
    rows = []
    for job in jobs:
        kind = job["kind"]
        live = job["finished_at"] is None
        run_at = moment(job["run_at"], now) if kind in ("scheduled", "retrying", "ready",
                                                         "unclaimable", "blocked") else ""
        running = (_duration(job["started_at"], now) if kind == "running" else
                   _duration(job["started_at"], job["finished_at"]) if not live else "")
        heartbeat = _duration(job["heartbeat_at"], now) if kind == "running" else ""
        check = (f"<input type=\"checkbox\" name=\"job\" value=\"{job['id']}\" "
                 "aria-label=\"select\">" if view.actions else "")
        # A running job's latest progress under its state; snoozes by its attempts.
        shown = progress_bar(job.get("progress")) if kind == "running" else ""
        snoozes = job.get("snoozes") or 0
        snoozed = (f" <span class=\"muted snoozes\" title=\"snoozes\">· {snoozes} snoozed"
                   "</span>" if snoozes else "")
        rows.append(
            f"<tr data-job-id=\"{job['id']}\" data-kind=\"{esc(kind)}\"><td>{check}</td>"
            f"<td><a href=\"/jobs/{job['id']}\">{job['id']}</a></td>"
            f"<td><a href=\"{esc(queue_link(job['queue']))}\">{esc(job['queue'])}</a></td>"
            f"<td>{esc(job['task'])}</td>"
            f"<td><span class=\"pill {esc(kind)}\">{esc(kind)}</span>{shown}</td>"
            f"<td class=\"num\">{job['attempt']}/{job['max_attempts']}{snoozed}</td>"
            f"<td>{moment(job['created_at'], now)}</td><td class=\"run-at\">{run_at}</td>"
            f"<td class=\"num running-for\">{running}</td>"
            f"<td class=\"num heartbeat\">{heartbeat}</td>"
            f"<td class=\"mono\">{esc((job['worker_id'] or '')[:8])}</td>"
            f"<td>{moment(job['finished_at'], now) if not live else ''}</td>"
            f"<td class=\"tags\">{tag_pills(job.get('tags'))}</td>"
            f"<td class=\"error-text\">{esc((job['last_error'] or '')[:120])}</td></tr>")
    return rows


def hidden_fields(args: Mapping[str, str | list[str]], *, prefix: str = "") -> str:
    """Hidden inputs carrying ``args`` (a list value repeats its field)."""
    return "".join(f"<input type=\"hidden\" name=\"{esc(prefix + k)}\" value=\"{esc(v)}\">"
                   for k, values in args.items()
                   for v in (values if isinstance(values, list) else [values]))


def confirm_page(view: View, action: str, ids: list[int], more: bool,
                 form: Mapping[str, str], picked: list[str], tags: list[str]) -> str:
    """Asks once more, saying how many jobs the action will touch (``tags``: the
    filter's repeated ``f_tag`` values)."""
    count = f"more than {len(ids):,}" if more else f"{len(ids):,}"
    jobs = "job" if len(ids) == 1 and not more else "jobs"
    keep = hidden_fields({k: v for k, v in form.items()
                          if k not in ("action", "job", "f_tag", CSRF_FIELD)})
    keep += hidden_fields({"f_tag": tags})
    keep += "".join(f"<input type=\"hidden\" name=\"job\" value=\"{esc(i)}\">" for i in picked)
    verb = {"retry": "Retry", "cancel": "Cancel", "delete": "Delete"}[action]
    what = {"retry": "Only failed or cancelled jobs are queued again; each keeps its id.",
            "cancel": "Queued jobs end at once; running jobs are asked to stop.",
            "delete": "Finished jobs are removed from history for good; live jobs are "
                      "left alone (cancel them first)."}[action]
    back = link("/jobs", **{**{k[2:]: v for k, v in form.items() if k.startswith("f_")},
                            "tag": tags})
    return (f"<h1>{verb} {count} {jobs}?</h1><p id=\"confirm-count\" data-count=\"{len(ids)}\">"
            f"This {action} touches {count} {jobs}, in batches of 500.</p><p>{esc(what)}</p>"
            "<form method=\"post\" action=\"/jobs/bulk\" id=\"confirm\">"
            f"<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{esc(view.csrf)}\">{keep}"
            f"<input type=\"hidden\" name=\"confirm\" value=\"yes\">"
            f"<button type=\"submit\" name=\"action\" value=\"{esc(action)}\" "
            f"class=\"{'danger' if action != 'retry' else 'primary'}\">{verb} {count} {jobs}"
            f"</button> <a href=\"{esc(back)}\">Go back</a></form>"
            f"<details><summary>ids</summary><pre>{esc(json.dumps(ids[:200]))}"
            f"{' …' if len(ids) > 200 else ''}</pre></details>")


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max(0.0, (end - start).total_seconds())
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
