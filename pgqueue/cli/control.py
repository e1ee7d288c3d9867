"""``pgqueue cancel``, ``pgqueue queue`` (pause, resume, limit), ``pgqueue periodic list``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from .. import _dsn
from .common import DSN_HELP, echo_json, require_dsn
from .reads import connect_reads, read_dsn_option
from .tagged import cancel_tagged, tag_mode_option, tag_option, yes_option

if TYPE_CHECKING:
    from ..producer.control import QueueLimits

__all__ = ["register"]


@click.command()
@click.argument("job_ids", nargs=-1, type=click.IntRange(min=1))
@click.option("--reason", default="cancelled by request", show_default=True)
@tag_option
@tag_mode_option
@click.option("--queue", help="With --tag: only this queue.")
@yes_option
@click.option("--json", "as_json", is_flag=True, help="With --tag: print JSON for scripts.")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=DSN_HELP)
def cancel(job_ids: tuple[int, ...], reason: str, tags: tuple[str, ...], tag_mode: str,
           queue: str | None, yes: bool, as_json: bool, dsn: str | None) -> None:
    """Cancel jobs: queued ones at once, running ones through their worker.

    Give ids, or --tag for every live job with the tags (asks to confirm the
    count unless --yes). Exit code 0 when every job was cancelled, requested or
    already finished; 3 when a job does not exist.
    """
    from ..producer.control import CancelResult
    from ..producer.control import cancel as run_cancel

    if bool(job_ids) == bool(tags):
        raise click.UsageError("give job ids or --tag")
    if queue and not tags:
        raise click.UsageError("--queue goes with --tag")
    if tags:
        with _dsn.connect(require_dsn(dsn), autocommit=True) as conn:
            cancel_tagged(conn, tags, tag_mode, queue, reason, yes=yes, as_json=as_json)
        return
    missing = False
    with _dsn.connect(require_dsn(dsn)) as conn:
        for job_id in job_ids:
            result = run_cancel(conn, job_id, reason=reason)
            conn.commit()
            missing |= result is CancelResult.NOT_FOUND
            click.echo(f"{job_id}\t{result}")
    if missing:
        sys.exit(3)


@click.group()
def queue() -> None:
    """Pause, resume and limit queues."""


@queue.command("pause")
@click.argument("name")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=DSN_HELP)
def queue_pause(name: str, dsn: str | None) -> None:
    """Stop workers claiming from a queue (running jobs finish). Survives restarts."""
    from ..producer.control import pause_queue

    with _dsn.connect(require_dsn(dsn)) as conn:
        changed = pause_queue(conn, name)
    click.echo(f"queue {name} paused" if changed else f"queue {name} was already paused")


@queue.command("resume")
@click.argument("name")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=DSN_HELP)
def queue_resume(name: str, dsn: str | None) -> None:
    """Let workers claim from a paused queue again."""
    from ..producer.control import resume_queue

    with _dsn.connect(require_dsn(dsn)) as conn:
        changed = resume_queue(conn, name)
    click.echo(f"queue {name} resumed" if changed else f"queue {name} was not paused")


_PERIOD_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _rate_spec(ctx: click.Context, param: click.Parameter,
               value: str | None) -> tuple[int | None, float | None] | None:
    """'100/1m', '10/s', '5/30s' or 'none' → (limit, period seconds)."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return (None, None)
    count, sep, period = value.strip().partition("/")
    unit = period[-1:].lower()
    number = period[:-1] or "1"
    try:
        if not sep or unit not in _PERIOD_UNITS:
            raise ValueError
        return (int(count), float(number) * _PERIOD_UNITS[unit])
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: write JOBS/PERIOD, e.g. 100/1m, 10/s, 5/30s, 1000/1h, or none"
        ) from None


def _concurrency_spec(ctx: click.Context, param: click.Parameter,
                      value: str | None) -> tuple[int | None] | None:
    """'N', or 'none' / 'off' to remove → (N or None,)."""
    if value is None:
        return None
    if value.strip().lower() in ("none", "off"):
        return (None,)
    try:
        return (int(value),)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a number of jobs, or none") from None


@queue.command("limit")
@click.argument("name")
@click.option("--concurrency", callback=_concurrency_spec, metavar="N|none",
              help="At most N jobs of the queue run at once, across all workers.")
@click.option("--rate", callback=_rate_spec, metavar="N/PERIOD|none",
              help="At most N job starts in any window of PERIOD (e.g. 100/1m, 10/s).")
@click.option("--max-depth", callback=_concurrency_spec, metavar="N|off",
              help="Refuse new jobs once the queue holds N live jobs (queued, scheduled, "
                   "blocked, running).")
@click.option("--warn-depth", callback=_concurrency_spec, metavar="N|off",
              help="Only warn (log, metric, dashboard) past N live jobs; refuses nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the limits as JSON.")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=DSN_HELP)
def queue_limit(name: str, concurrency: tuple[int | None] | None,
                rate: tuple[int | None, float | None] | None,
                max_depth: tuple[int | None] | None, warn_depth: tuple[int | None] | None,
                as_json: bool, dsn: str | None) -> None:
    """Set or show a queue's limits.

    Without options, shows them. 'none' (or 'off') removes a limit. Examples:
    pgqueue queue limit payment --concurrency 3;
    pgqueue queue limit partner-api --rate 100/1m;
    pgqueue queue limit email --max-depth 100000 --warn-depth 50000.
    """
    from ..errors import InvalidJobError
    from ..producer import control

    with _dsn.connect(require_dsn(dsn)) as conn:
        try:
            if concurrency is not None:
                control.set_concurrency_limit(conn, name, concurrency[0])
            if rate is not None:
                control.set_rate_limit(conn, name, rate[0], rate[1])
            if max_depth is not None:
                control.set_max_depth(conn, name, max_depth[0])
            if warn_depth is not None:
                control.set_warn_depth(conn, name, warn_depth[0])
        except InvalidJobError as exc:
            raise click.UsageError(str(exc)) from None
        conn.commit()
        limits = control.get_queue_limits(conn, name)
    if as_json:
        echo_json(_limits_json(name, limits))
        return
    if limits is None:
        click.echo(f"queue {name}: unknown (no job or setting yet); no limits")
        return
    conc = ("none" if limits.concurrency_limit is None
            else f"{limits.concurrency_limit} (running now: {limits.running})")
    rate_text = ("none" if limits.rate_limit is None else
                 f"{limits.rate_limit} per {limits.rate_period_seconds:g} s "
                 f"(claims in the current window: {limits.claims_in_window})")
    click.echo(f"queue {name}: concurrency limit {conc}; rate limit {rate_text}; "
               f"max depth {_or_none(limits.max_depth)}; "
               f"warn depth {_or_none(limits.warn_depth)} (live jobs now: {limits.depth})")


def _or_none(value: int | None) -> str:
    return "none" if value is None else str(value)


def _limits_json(name: str, limits: QueueLimits | None) -> dict[str, Any]:
    if limits is None:
        return {"queue": name, "known": False, "concurrency_limit": None, "running": 0,
                "rate_limit": None, "rate_period_seconds": None, "claims_in_window": 0,
                "max_depth": None, "warn_depth": None, "depth": 0}
    return {"queue": name, "known": True, "concurrency_limit": limits.concurrency_limit,
            "running": limits.running, "rate_limit": limits.rate_limit,
            "rate_period_seconds": limits.rate_period_seconds,
            "claims_in_window": limits.claims_in_window, "max_depth": limits.max_depth,
            "warn_depth": limits.warn_depth, "depth": limits.depth}


def _retention_changes(ctx: click.Context, param: click.Parameter,
                       value: str | None) -> dict[str, str] | None:
    """'succeeded=12h,failed=off,cancelled=default' → {state: value}, checked."""
    if value is None:
        return None
    from ..errors import InvalidArgumentError
    from ..producer.queue_retention import DEFAULT
    from ..retention import FINAL_STATES, parse_keep

    changes: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        state, sep, keep = (x.strip() for x in part.partition("="))
        state = state.lower()
        if not sep or state not in FINAL_STATES:
            raise click.BadParameter(
                f"{part!r}: write STATE=AGE with a state of {', '.join(FINAL_STATES)} and an "
                "age such as 12h, 90d, off or default (e.g. succeeded=12h,failed=off)")
        if state in changes:
            raise click.BadParameter(f"{state} is given twice")
        if keep.lower() != DEFAULT:
            try:
                parse_keep(keep, field=f"retention of {state}", error=InvalidArgumentError)
            except InvalidArgumentError as exc:
                raise click.BadParameter(str(exc)) from None
        changes[state] = keep
    if not changes:
        raise click.BadParameter("give at least one STATE=AGE")
    return changes


@queue.command("retention")
@click.argument("name")
@click.argument("changes", required=False, callback=_retention_changes,
                metavar="[STATE=AGE,...]")
@click.option("--json", "as_json", is_flag=True, help="Print the overrides as JSON.")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=DSN_HELP)
def queue_retention(name: str, changes: dict[str, str] | None, as_json: bool,
                    dsn: str | None) -> None:
    """Set or show how long a queue keeps its finished jobs, by final state.

    Without STATE=AGE, shows the queue's overrides. AGE is a duration with its
    unit (30m, 12h, 90d, 2w; at least 1m), off (keep for ever) or default
    (follow the workers' --retention again). Examples:
    pgqueue queue retention audit succeeded=90d,failed=off;
    pgqueue queue retention email failed=default.
    """
    from ..errors import InvalidJobError
    from ..producer.queue_retention import get_retention, set_retention
    from ..retention import FINAL_STATES, format_keep

    with _dsn.connect(require_dsn(dsn)) as conn:
        try:
            if changes is not None:
                set_retention(conn, name, **changes)
                conn.commit()
            overrides = get_retention(conn, name)
        except InvalidJobError as exc:
            raise click.UsageError(str(exc)) from None
    shown = {state: None if keep is None else keep.total_seconds()
             for state, keep in overrides.items()}
    if as_json:
        echo_json({"queue": name, "overrides": {
            state: ("off" if keep is None else keep) for state, keep in shown.items()}})
        return
    words = [f"{state} {format_keep(shown[state]) if state in shown else 'default'}"
             for state in FINAL_STATES]
    click.echo(f"queue {name} keeps finished jobs: {'; '.join(words)} "
               "(default: the workers' --retention)")


@click.group()
def periodic() -> None:
    """Periodic (cron) schedules."""


@periodic.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON for scripts: {\"schedules\": [...]}.")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=DSN_HELP)
@read_dsn_option
def periodic_list(as_json: bool, dsn: str | None, read_dsn: str | None) -> None:
    """Every schedule the leader has recorded, with its last and next run."""
    from .._sql import query

    with connect_reads(dsn, read_dsn) as conn:
        rows = conn.execute(query("periodic_list")).fetchall()
    keys = ("name", "cron", "task", "queue", "on_missed", "last_tick", "next_tick",
            "last_job_id")
    if as_json:
        echo_json({"schedules": [dict(zip(keys, row, strict=True)) for row in rows]})
        return
    if not rows:
        click.echo("no schedules yet (a worker's leader records them)")
        return
    table = [keys] + [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(keys))]
    for row in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def register(main: click.Group) -> None:
    """Add ``cancel``, ``queue`` and ``periodic`` to the ``pgqueue`` group (idempotent)."""
    for command in (cancel, queue, periodic):
        if command.name not in main.commands:
            main.add_command(command)
    jobs = main.commands.get("jobs")
    if isinstance(jobs, click.Group):
        jobs.add_command(cancel)  # also `pgqueue jobs cancel`
