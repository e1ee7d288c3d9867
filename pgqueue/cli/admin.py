"""Operating commands of the ``pgqueue`` CLI: status, jobs, retry, prune, workers, dashboard.

Exit codes: 0 ok; 1 error (database, refused action); 2 usage; 3 not found
(``jobs show`` of an unknown id, ``retry`` of an id no job has).
Tables for people by default; ``--json`` prints one JSON document for scripts.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from .. import _dsn, admin
from ..progress import describe_progress
from ..retention import parse_duration_text
from ..types import JobState
from .common import DSN_HELP, POOLER_HELP, echo_json, require_dsn
from .reads import connect_reads, read_dsn_option, reads_lag
from .tagged import retry_tagged, tag_mode_option, tag_option, yes_option

__all__ = ["EXIT_NOT_FOUND", "parse_duration", "register"]

EXIT_ERROR = 1
EXIT_NOT_FOUND = 3

_STATUS_COLUMNS = ("queue", "ready", "scheduled", "running", "failed", "succeeded_1h",
                   "lag_seconds", "unclaimable", "paused", "depth", "max_depth")

dsn_option = click.option("--dsn", envvar="PGQUEUE_DSN", help=DSN_HELP)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def parse_duration(text: str) -> float:
    """Seconds in ``45s``, ``30m``, ``12h``, ``7d``, ``2w``.

    The unit is required: a bare ``7`` is refused rather than read as seconds
    (someone who meant seven days would lose a week of history).
    """
    seconds = parse_duration_text(text)
    if seconds is None:
        raise click.BadParameter(f"{text!r} is not a duration: write a number and a unit, "
                                 "s, m, h, d or w (45s, 30m, 12h, 7d, 2w)")
    return seconds


def _connect(dsn: str | None) -> Any:
    return _dsn.connect(require_dsn(dsn), autocommit=True)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat(timespec="seconds"))
    return " ".join(str(value).split())


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 60) -> str:
    """A plain text table: a header row, then one line per row."""
    cells = [[_cell(v)[:max_width] for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"pgqueue: error: {message}", err=True)
    sys.exit(code)


def _invalid(exc: admin.InvalidArgumentError) -> click.UsageError:
    return click.UsageError(str(exc))


# --- commands ---------------------------------------------------------------------------


@click.command()
@click.option("--watch", is_flag=True, help="Redraw every --interval seconds until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True)
@json_option
@dsn_option
@read_dsn_option
def status(watch: bool, interval: float, as_json: bool, dsn: str | None,
           read_dsn: str | None) -> None:
    """Queues at a glance: the pgqueue.queue_stats view.

    With --read-dsn it reads the replica and prints how far behind the primary it is.
    """
    with connect_reads(dsn, read_dsn) as conn:
        while True:
            lag = reads_lag(conn, dsn, read_dsn)
            queues = admin.list_queues(conn)
            if as_json:
                echo_json({"queues": queues} if lag is None else
                          {"queues": queues, "read_from": lag.as_json()})
            else:
                columns = [c for c in _STATUS_COLUMNS if any(c in q for q in queues)] or \
                    ["queue"]
                text = format_table(columns, [[q.get(c) for c in columns] for q in queues])
                if watch:
                    click.clear()
                    click.echo(time.strftime("%H:%M:%S") + f"  (every {interval:g} s, Ctrl-C "
                               "to stop)")
                if lag is not None:
                    click.echo(lag.describe())
                click.echo(text if queues else "no queues yet")
            if not watch:
                return
            try:
                time.sleep(interval)
            except KeyboardInterrupt:
                return


@click.group()
def jobs() -> None:
    """List, show, cancel and retry jobs."""


@jobs.command("list")
@click.option("--queue")
@click.option("--state", type=click.Choice([s.value for s in JobState]))
@click.option("--task")
@tag_option
@tag_mode_option
@click.option("--limit", type=click.IntRange(1, admin.MAX_LIST_LIMIT),
              default=admin.DEFAULT_LIST_LIMIT, show_default=True)
@click.option("--cursor", type=click.IntRange(min=1), help="Show jobs older than this id.")
@json_option
@dsn_option
@read_dsn_option
def jobs_list(queue: str | None, state: str | None, task: str | None, tags: tuple[str, ...],
              tag_mode: str, limit: int, cursor: int | None, as_json: bool,
              dsn: str | None, read_dsn: str | None) -> None:
    """Jobs newest first; --cursor with the printed next id pages on.

    --tag a --tag b lists jobs tagged a and b; add --tag-mode any for a or b.
    """
    with connect_reads(dsn, read_dsn) as conn:
        try:
            page = admin.list_jobs(conn, queue=queue, state=state, task=task,
                                   tags=tags or None, tags_mode=tag_mode, limit=limit,
                                   cursor=cursor)
        except admin.InvalidArgumentError as exc:
            raise _invalid(exc) from None
    if as_json:
        echo_json({"jobs": [dataclasses.asdict(j) for j in page.jobs],
                    "next_cursor": page.next_cursor})
        return
    columns = ["id", "queue", "task", "state", "attempt", "created_at", "finished_at",
               "tags", "last_error"]
    rows = [[j.id, j.queue, j.task, j.state, f"{j.attempt}/{j.max_attempts}", j.created_at,
             j.finished_at, j.tags or None, (j.last_error or "")[:50] or None]
            for j in page.jobs]
    click.echo(format_table(columns, rows) if rows else "no jobs match")
    if page.next_cursor is not None:
        click.echo(f"more: --cursor {page.next_cursor}")


@jobs.command("show")
@click.argument("job_id", type=click.IntRange(min=1))
@json_option
@dsn_option
@read_dsn_option
def jobs_show(job_id: int, as_json: bool, dsn: str | None, read_dsn: str | None) -> None:
    """Everything about one job, including every error and its traceback."""
    with connect_reads(dsn, read_dsn) as conn:
        job = admin.get_job(conn, job_id)
    if job is None:
        where = (" on the read replica (it may not have replayed the job yet; "
                 "'pgqueue status --read-dsn' shows its lag)") if read_dsn else ""
        _fail(f"no job has id {job_id}{where}", EXIT_NOT_FOUND)
        return
    if as_json:
        echo_json({**dataclasses.asdict(job), "trace_id": job.trace_id})
        return
    skip = {"args", "errors", "result", "trace_context", "progress", "meta"}
    for field in admin.field_names(admin.JobDetail):
        if field not in skip:
            click.echo(f"{field:>13}: {_cell(getattr(job, field))}")
    click.echo(f"{'trace_id':>13}: {_cell(job.trace_id)}")
    click.echo(f"{'progress':>13}: {_cell(describe_progress(job.progress) or None)}")
    click.echo("args:\n" + json.dumps(job.args, indent=2, ensure_ascii=False))
    if job.meta:
        click.echo("meta:\n" + json.dumps(job.meta, indent=2, ensure_ascii=False))
    if job.result is not None:
        click.echo("result:\n" + json.dumps(job.result, indent=2, ensure_ascii=False))
    for error in job.errors:
        click.echo(f"--- error, attempt {error.get('attempt')} ({error.get('kind')}) "
                   f"at {error.get('at')}\n{error.get('message')}")
        if error.get("traceback"):
            click.echo(str(error["traceback"]).rstrip())


@click.command()
@click.argument("job_ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--failed", is_flag=True, help="Retry every failed job (of --queue).")
@tag_option
@tag_mode_option
@click.option("--queue", help="With --failed or --tag: only this queue.")
@yes_option
@json_option
@dsn_option
def retry(job_ids: tuple[int, ...], failed: bool, tags: tuple[str, ...], tag_mode: str,
          queue: str | None, yes: bool, as_json: bool, dsn: str | None) -> None:
    """Queue failed or cancelled jobs again; each keeps its id.

    Give ids, --failed (every failed job), or --tag (every failed or cancelled
    job with the tags; asks to confirm the count unless --yes). Exit 3 when an
    id belongs to no job, 1 when a job cannot be retried (it is live, it
    succeeded, or its unique key is taken).
    """
    if sum((failed, bool(job_ids), bool(tags))) != 1:
        raise click.UsageError("give job ids, --failed or --tag (optionally with --queue)")
    if queue and not (failed or tags):
        raise click.UsageError("--queue goes with --failed or --tag")
    with _connect(dsn) as conn:
        if tags:
            retry_tagged(conn, tags, tag_mode, queue, yes=yes, as_json=as_json)
            return
        if failed:
            try:
                count = admin.retry_failed(conn, queue)
            except admin.InvalidArgumentError as exc:
                raise _invalid(exc) from None
            if as_json:
                echo_json({"queue": queue, "retried": count})
            else:
                click.echo(f"retried {count} failed job{'s' if count != 1 else ''}"
                           + (f" of queue {queue}" if queue else ""))
            return
        outcomes = {job_id: admin.retry(conn, job_id) for job_id in job_ids}
    if as_json:
        echo_json({"jobs": [{"id": i, "outcome": o.value} for i, o in outcomes.items()]})
    else:
        for job_id, outcome in outcomes.items():
            click.echo(f"{job_id}: {outcome.value}")
    if any(o is admin.RetryOutcome.NOT_FOUND for o in outcomes.values()):
        sys.exit(EXIT_NOT_FOUND)
    if any(o is not admin.RetryOutcome.RETRIED for o in outcomes.values()):
        sys.exit(EXIT_ERROR)


@click.command()
@click.option("--older-than", required=True, metavar="AGE",
              help="Age of finished jobs to delete, with its unit: 45s, 30m, 12h, 7d, 2w.")
@click.option("--dry-run", is_flag=True,
              help="Print how many jobs would go, by state, and delete nothing.")
@json_option
@dsn_option
def prune(older_than: str, dry_run: bool, as_json: bool, dsn: str | None) -> None:
    """Delete finished jobs (any outcome) older than --older-than, in small batches."""
    try:
        seconds = parse_duration(older_than)
    except click.BadParameter as exc:
        exc.param_hint = "--older-than"
        raise
    with _connect(dsn) as conn:
        if dry_run:
            counts = admin.prune_counts(conn, seconds)
        else:
            count = admin.prune(conn, seconds)
    if dry_run:
        total = sum(counts.values())
        if as_json:
            echo_json({"dry_run": True, "older_than_seconds": seconds, "would_delete": total,
                        "by_state": counts})
            return
        click.echo(f"would delete {total} finished job{'s' if total != 1 else ''} older than "
                   f"{older_than.strip()} (dry run: nothing deleted)")
        for state, jobs in counts.items():
            click.echo(f"  {state:<10} {jobs}")
        return
    if as_json:
        echo_json({"deleted": count})
    else:
        click.echo(f"deleted {count} finished job{'s' if count != 1 else ''}")


@click.command()
@json_option
@dsn_option
@read_dsn_option
def workers(as_json: bool, dsn: str | None, read_dsn: str | None) -> None:
    """Registered workers: host, pid, queues, busy slots, heartbeat age."""
    with connect_reads(dsn, read_dsn) as conn:
        found = admin.list_workers(conn)
    if as_json:
        echo_json({"workers": [dataclasses.asdict(w) for w in found]})
        return
    columns = ["host", "pid", "queues", "busy", "heartbeat_age", "started_at", "id"]
    rows = [[w.host, w.pid, w.queues, f"{w.busy}/{w.concurrency}",
             f"{w.heartbeat_age_seconds:.1f}s", w.started_at, w.id] for w in found]
    click.echo(format_table(columns, rows) if rows else "no workers are running")


def _host_list(ctx: click.Context, param: click.Parameter,
               value: tuple[str, ...]) -> tuple[str, ...]:
    """--allowed-host values, each of which may itself be a comma-separated list."""
    names = tuple(n.strip() for v in value for n in v.split(",") if n.strip())
    for name in names:
        if any(c.isspace() or c in "/@" for c in name):
            raise click.BadParameter(f"{name!r} is not a host name (NAME or NAME:PORT)")
    return names


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 exposes it to the network.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar="PGQUEUE_DASHBOARD_TOKEN",
              help="Require this token for every page and action ($PGQUEUE_DASHBOARD_TOKEN).")
@click.option("--read-only", is_flag=True, help="Hide and refuse every action.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME[:PORT]",
              envvar="PGQUEUE_DASHBOARD_ALLOWED_HOSTS", callback=_host_list,
              help="Also answer requests whose Host header is NAME (any port) or NAME:PORT, "
                   "e.g. the name of a reverse proxy; repeatable "
                   "($PGQUEUE_DASHBOARD_ALLOWED_HOSTS, comma-separated). Other names than "
                   "the listening address (and localhost on loopback) get 421.")
@dsn_option
@read_dsn_option
@click.option("--pooler", envvar="PGQUEUE_POOLER", type=click.Choice(_dsn.POOLERS),
              default=_dsn.DEFAULT_POOLER, show_default=True, help=POOLER_HELP)
def dashboard(host: str, port: int, token: str | None, read_only: bool,
              allowed_hosts: tuple[str, ...], dsn: str | None, read_dsn: str | None,
              pooler: str) -> None:
    """Serve the web dashboard and the HTTP API (/api/, /api/openapi.json).

    With --read-dsn, pages and GET requests read the replica (each shows its lag);
    every action and POST goes to --dsn.
    """
    from ..dashboard import make_server

    _connect(dsn).close()  # a clear error now rather than at the first request
    if read_dsn:
        connect_reads(dsn, read_dsn).close()
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        click.echo("pgqueue: warning: the dashboard listens beyond this machine without "
                   "--token", err=True)
    try:
        server, pools = make_server(_dsn.resolve_dsn(dsn) or "", host=host, port=port,
                                   token=token, read_only=read_only,
                                   allowed_hosts=allowed_hosts, pooler=pooler,
                                   read_dsn=read_dsn or None)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        return
    bound_host, bound_port = server.server_address[:2]
    mode = (" (read-only)" if read_only else "") + (" (reads from the replica)" if read_dsn
                                                    else "")
    click.echo(f"pgqueue dashboard on http://{bound_host!s}:{bound_port}/{mode}; Ctrl-C stops",
               err=True)
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        pools.close()


def register(main: click.Group) -> None:
    """Add the operating commands to the ``pgqueue`` group (idempotent)."""
    for command in (status, jobs, retry, prune, workers, dashboard):
        if command.name not in main.commands:
            main.add_command(command)
    jobs.add_command(retry)  # also `pgqueue jobs retry`
