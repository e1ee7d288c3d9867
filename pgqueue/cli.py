"""The ``pgqueue`` command line."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click
import psycopg
from psycopg import errors as pg_errors

from . import _dsn
from .errors import PgQueueError

if TYPE_CHECKING:
    from .tasks import Registry

__all__ = ["main"]

_DSN_HELP = "PostgreSQL connection string; else $PGQUEUE_DSN, else $DATABASE_URL."


def _echo_json(payload: Any) -> None:
    """One JSON document, as every ``--json`` prints (the operating commands' format)."""
    from .dashboard.http import json_default

    click.echo(json.dumps(payload, default=json_default, indent=2, ensure_ascii=False))


def _require_dsn(dsn: str | None) -> str:
    resolved = _dsn.resolve_dsn(dsn)
    if not resolved:
        raise click.UsageError("no database given: pass --dsn or set PGQUEUE_DSN or DATABASE_URL")
    return resolved


def _missing_schema(exc: psycopg.Error) -> bool:
    """Whether ``exc`` says a pgqueue table, view, function or the schema is missing."""
    return (isinstance(exc, pg_errors.UndefinedTable | pg_errors.UndefinedFunction
                       | pg_errors.InvalidSchemaName)
            and "pgqueue" in (exc.diag.message_primary or ""))


class _Group(click.Group):
    """Turns pgqueue's own errors, and a missing schema, into one clear line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PgQueueError as exc:
            click.echo(f"pgqueue: error: {_dsn.redact(str(exc))}", err=True)
            sys.exit(1)
        except psycopg.Error as exc:
            if not _missing_schema(exc):
                raise
            click.echo("pgqueue: error: the pgqueue schema is missing or out of date "
                       f"({exc.diag.message_primary}); run 'pgqueue migrate'", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="pgqueue")
def main() -> None:
    """pgqueue: background jobs on nothing but PostgreSQL."""


@main.command()
@click.option("--dsn", envvar="PGQUEUE_DSN", help=_DSN_HELP)
@click.option(
    "--print-sql", is_flag=True, help="Print the migrations as SQL instead of applying them."
)
def migrate(dsn: str | None, print_sql: bool) -> None:
    """Create or upgrade the pgqueue schema."""
    from .migrate import latest_version, migration_sql
    from .migrate import migrate as run_migrate

    if print_sql:
        click.echo(migration_sql(), nl=False)
        return
    with _dsn.connect(_require_dsn(dsn), autocommit=True) as conn:
        applied = run_migrate(conn)
    if applied:
        click.echo(f"applied migrations {', '.join(str(v) for v in applied)}; "
                   f"schema at version {latest_version()}")
    else:
        click.echo(f"schema already at version {latest_version()}; nothing to do")


@main.command()
@click.argument("task")
@click.option("--args", "args_json", default="{}", help="Job args as a JSON object.")
@click.option("--app", envvar="PGQUEUE_APP",
              help="The task registry (module:attribute): the task's declared queue, "
                   "priority and max_attempts apply unless given here.")
@click.option("--queue", help="[default: the task's queue with --app, else default]")
@click.option("--priority", type=int, help="[default: the task's with --app, else 0]")
@click.option("--delay", type=float, help="Seconds before the job may run.")
@click.option("--max-attempts", type=int, help="[default: the task's with --app, else 5]")
@click.option("--unique-key")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=_DSN_HELP)
def enqueue(
    task: str,
    args_json: str,
    app: str | None,
    queue: str | None,
    priority: int | None,
    delay: float | None,
    max_attempts: int | None,
    unique_key: str | None,
    dsn: str | None,
) -> None:
    """Enqueue one job and print its id (committed at once).

    Without --app, warns when no running worker would take the task from its queue.
    """
    from ._sql import query
    from .producer import enqueue as run_enqueue
    from .tasks import EnqueueOptions

    try:
        args = json.loads(args_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--args") from None
    declared = EnqueueOptions()
    if app:
        registry = load_registry(app)
        found = registry.get(task)
        if found is None:
            names = ", ".join(registry.names) or "none"
            raise click.BadParameter(f"{app} has no task {task!r} (its tasks: {names})",
                                     param_hint="--app")
        declared = found.defaults
    queue = declared.queue if queue is None else queue
    with _dsn.connect(_require_dsn(dsn)) as conn:
        job_id = run_enqueue(
            conn, task, args, queue=queue, delay=delay, unique_key=unique_key,
            priority=declared.priority if priority is None else priority,
            max_attempts=declared.max_attempts if max_attempts is None else max_attempts)
        row = None if app else conn.execute(query("worker_queues_for_task"),
                                            {"task": task}).fetchone()
    click.echo(job_id)
    if row is not None and queue not in row[0]:
        elsewhere = (f"; running workers take it from {', '.join(row[0])}" if row[0] else "")
        click.echo(f"pgqueue: warning: no running worker takes task {task!r} from queue "
                   f"{queue!r}{elsewhere}. Pass --app module:registry to use the task's "
                   "declared queue and options, or --queue.", err=True)


# --- pgqueue worker ------------------------------------------------------------------


def load_registry(app: str) -> Registry:
    """The Registry named by ``module:attribute`` (the current folder is importable)."""
    import importlib

    from .tasks import Registry

    module_name, _, attr = app.partition(":")
    if not module_name or not attr:
        raise click.BadParameter("use module:attribute, for example myapp.jobs:tasks",
                                 param_hint="--app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {module_name!r}: {exc}",
                                 param_hint="--app") from None
    registry = getattr(module, attr, None)
    if registry is None:
        raise click.BadParameter(f"module {module_name!r} has no attribute {attr!r}",
                                 param_hint="--app")
    if not isinstance(registry, Registry):
        raise click.BadParameter(
            f"{app} is a {type(registry).__name__}, not a pgqueue.Registry", param_hint="--app")
    return registry


class _EarlyStop:
    """SIGTERM or SIGINT before the worker's own handlers are in place: a clean stop.

    Installed first thing in ``pgqueue worker`` (and in each forked child), so a
    process stopped while it still imports the app or connects exits 0 without
    claiming anything, instead of dying of the signal. ``Worker.run`` then puts
    its own handlers in place (a second signal there ends at once).
    """

    def __init__(self) -> None:
        self.requested = False
        self._worker: Any = None

    @classmethod
    def install(cls) -> _EarlyStop:
        import signal

        early = cls()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, early._on_signal)
        return early

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self._worker is not None:
            self._worker.stop()

    def hand_to(self, worker: Any) -> None:
        """From now on a signal stops ``worker`` (at once, if one came already)."""
        self._worker = worker
        if self.requested:
            worker.stop()


def _run_worker_and_exit(worker: Any) -> None:
    """Run a worker, then exit 0 even if a plain-function handler that ignored its
    stop request still holds a thread (its job was already handed back)."""
    import logging

    from .observability.runtime import finish_process

    worker.run()
    finish_process()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _queue_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if not value:
        return None
    return [q.strip() for q in value.split(",") if q.strip()]


@main.command()
@click.option("--app", required=True, envvar="PGQUEUE_APP",
              help="The task registry, as module:attribute (e.g. myapp.jobs:tasks).")
@click.option("--queues", envvar="PGQUEUE_QUEUES", callback=_queue_list,
              help="Comma-separated queues, each optionally with its local slots "
                   "(email=10,payment=2: at most 2 payment jobs at once in this process); "
                   "default: every queue the registry's tasks use.")
@click.option("--concurrency", envvar="PGQUEUE_CONCURRENCY", type=click.IntRange(1, 10_000),
              default=None, help="Jobs run at once per process [default: 10, or the sum of "
                                 "the slots when every queue has some].")
@click.option("--processes", envvar="PGQUEUE_PROCESSES", type=click.IntRange(1, 256),
              default=1, show_default=True, help="Worker processes under one supervisor.")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=_DSN_HELP)
@click.option("--poll-interval", envvar="PGQUEUE_POLL_INTERVAL", type=float, default=5.0,
              show_default=True, help="Seconds between claims when no notification comes.")
@click.option("--heartbeat-interval", envvar="PGQUEUE_HEARTBEAT_INTERVAL", type=float,
              default=5.0, show_default=True, help="Seconds between heartbeats.")
@click.option("--stall-timeout", envvar="PGQUEUE_STALL_TIMEOUT", type=float, default=60.0,
              show_default=True, help="Reclaim running jobs whose heartbeat is older.")
@click.option("--shutdown-timeout", envvar="PGQUEUE_SHUTDOWN_TIMEOUT", type=float,
              default=30.0, show_default=True, help="Grace period for running jobs on SIGTERM.")
@click.option("--startup-timeout", envvar="PGQUEUE_STARTUP_TIMEOUT", type=float,
              default=60.0, show_default=True, show_envvar=True,
              help="Exit non-zero when no database connection succeeded within this many "
                   "seconds of start (a database lost later is waited for).")
@click.option("--log-level", envvar="PGQUEUE_LOG_LEVEL", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@click.option("--log-format", envvar="PGQUEUE_LOG_FORMAT", default="text", show_default=True,
              type=click.Choice(["text", "json"]))
@click.option("--metrics-port", envvar="PGQUEUE_METRICS_PORT", type=click.IntRange(0, 65535),
              default=2112, show_default=True,
              help="Serve Prometheus /metrics on this port (all processes summed); 0: off.")
@click.option("--otel-psycopg", envvar="PGQUEUE_OTEL_PSYCOPG", default="off",
              show_default=True, type=click.Choice(["off", "jobs", "all"]),
              help="OpenTelemetry spans for psycopg statements: of handlers (jobs), "
                   "also of the worker's own claims and outcome writes (all).")
def worker(app: str, queues: list[str] | None, concurrency: int | None, processes: int,
           dsn: str | None, poll_interval: float, heartbeat_interval: float,
           stall_timeout: float, shutdown_timeout: float, startup_timeout: float,
           log_level: str, log_format: str, metrics_port: int, otel_psycopg: str) -> None:
    """Run jobs: claim, execute, retry, heartbeat, reap; stop cleanly on SIGTERM."""
    early_stop = _EarlyStop.install()
    from .observability.logs import configure_logging
    from .worker import Worker
    from .worker.processes import run_processes

    configure_logging(log_level, log_format)
    registry = load_registry(app)
    options: dict[str, Any] = {
        "dsn": _require_dsn(dsn), "queues": queues, "concurrency": concurrency,
        "poll_interval": poll_interval, "heartbeat_interval": heartbeat_interval,
        "stall_timeout": stall_timeout, "shutdown_timeout": shutdown_timeout,
        "startup_timeout": startup_timeout,
    }
    Worker(registry, **options)  # validates every option before anything starts
    from .observability import runtime

    if processes == 1:
        runtime.prepare_process(otel_psycopg)
        single = Worker(registry, **options, metrics_port=metrics_port or None)
        early_stop.hand_to(single)
        _run_worker_and_exit(single)
    if early_stop.requested:  # stopped before any child was forked
        sys.exit(0)
    # N processes: one endpoint in the supervisor sums the children's metric files.
    endpoint = runtime.serve_all_processes(metrics_port) if metrics_port else None

    def child() -> None:
        child_stop = _EarlyStop.install()
        configure_logging(log_level, log_format)
        runtime.prepare_process(otel_psycopg)
        child_worker = Worker(registry, **options)
        child_stop.hand_to(child_worker)
        if endpoint is not None:
            from .observability.metrics import WorkerMetrics

            child_worker.subscribe(WorkerMetrics(options["dsn"]))
        _run_worker_and_exit(child_worker)

    try:
        code = run_processes(processes, child)
    finally:
        if endpoint is not None:
            endpoint.close()
    sys.exit(code)


@main.command("grafana-dashboard")
def grafana_dashboard() -> None:
    """Print the Grafana dashboard JSON for the worker's Prometheus metrics."""
    from .observability.grafana import dashboard_json

    click.echo(dashboard_json(), nl=False)


# --- pgqueue cancel / queue / periodic -------------------------------------------


@main.command()
@click.argument("job_ids", nargs=-1, required=True, type=click.IntRange(min=1))
@click.option("--reason", default="cancelled by request", show_default=True)
@click.option("--dsn", envvar="PGQUEUE_DSN", help=_DSN_HELP)
def cancel(job_ids: tuple[int, ...], reason: str, dsn: str | None) -> None:
    """Cancel jobs: queued ones at once, running ones through their worker.

    Exit code 0 when every job was cancelled, requested or already finished;
    3 when a job does not exist.
    """
    from .control import CancelResult
    from .control import cancel as run_cancel

    missing = False
    with _dsn.connect(_require_dsn(dsn)) as conn:
        for job_id in job_ids:
            result = run_cancel(conn, job_id, reason=reason)
            conn.commit()
            missing |= result is CancelResult.NOT_FOUND
            click.echo(f"{job_id}\t{result}")
    if missing:
        sys.exit(3)


@main.group()
def queue() -> None:
    """Pause, resume and limit queues."""


@queue.command("pause")
@click.argument("name")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=_DSN_HELP)
def queue_pause(name: str, dsn: str | None) -> None:
    """Stop workers claiming from a queue (running jobs finish). Survives restarts."""
    from .control import pause_queue

    with _dsn.connect(_require_dsn(dsn)) as conn:
        changed = pause_queue(conn, name)
    click.echo(f"queue {name} paused" if changed else f"queue {name} was already paused")


@queue.command("resume")
@click.argument("name")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=_DSN_HELP)
def queue_resume(name: str, dsn: str | None) -> None:
    """Let workers claim from a paused queue again."""
    from .control import resume_queue

    with _dsn.connect(_require_dsn(dsn)) as conn:
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
    if value is None:
        return None
    if value.strip().lower() == "none":
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
@click.option("--json", "as_json", is_flag=True, help="Print the limits as JSON.")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=_DSN_HELP)
def queue_limit(name: str, concurrency: tuple[int | None] | None,
                rate: tuple[int | None, float | None] | None, as_json: bool,
                dsn: str | None) -> None:
    """Set or show a queue's limits across all workers.

    Without options, shows them. 'none' removes a limit. Examples:
    pgqueue queue limit payment --concurrency 3;
    pgqueue queue limit partner-api --rate 100/1m.
    """
    from .control import get_queue_limits, set_concurrency_limit, set_rate_limit
    from .errors import InvalidJobError

    with _dsn.connect(_require_dsn(dsn)) as conn:
        try:
            if concurrency is not None:
                set_concurrency_limit(conn, name, concurrency[0])
            if rate is not None:
                set_rate_limit(conn, name, rate[0], rate[1])
        except InvalidJobError as exc:
            raise click.UsageError(str(exc)) from None
        conn.commit()
        limits = get_queue_limits(conn, name)
    if as_json:
        _echo_json({"queue": name, "known": False, "concurrency_limit": None, "running": 0,
                    "rate_limit": None, "rate_period_seconds": None, "claims_in_window": 0}
                   if limits is None else {
            "queue": name, "known": True, "concurrency_limit": limits.concurrency_limit,
            "running": limits.running, "rate_limit": limits.rate_limit,
            "rate_period_seconds": limits.rate_period_seconds,
            "claims_in_window": limits.claims_in_window})
        return
    if limits is None:
        click.echo(f"queue {name}: unknown (no job or setting yet); no limits")
        return
    conc = ("none" if limits.concurrency_limit is None
            else f"{limits.concurrency_limit} (running now: {limits.running})")
    rate_text = ("none" if limits.rate_limit is None else
                 f"{limits.rate_limit} per {limits.rate_period_seconds:g} s "
                 f"(claims in the current window: {limits.claims_in_window})")
    click.echo(f"queue {name}: concurrency limit {conc}; rate limit {rate_text}")


@main.group()
def periodic() -> None:
    """Periodic (cron) schedules."""


@periodic.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON for scripts: {\"schedules\": [...]}.")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=_DSN_HELP)
def periodic_list(as_json: bool, dsn: str | None) -> None:
    """Every schedule the leader has recorded, with its last and next run."""
    from ._sql import query

    with _dsn.connect(_require_dsn(dsn)) as conn:
        rows = conn.execute(query("periodic_list")).fetchall()
    keys = ("name", "cron", "task", "queue", "on_missed", "last_tick", "next_tick",
            "last_job_id")
    if as_json:
        _echo_json({"schedules": [dict(zip(keys, row, strict=True)) for row in rows]})
        return
    if not rows:
        click.echo("no schedules yet (a worker's leader records them)")
        return
    table = [keys] + [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(keys))]
    for row in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# --- pgqueue demo --------------------------------------------------------------------


@main.command()
@click.option("--dsn", help="PostgreSQL connection string; else $PGQUEUE_DSN, else "
              "$DATABASE_URL, else a throwaway embedded PostgreSQL.")
@click.option("--jobs", default=3000, show_default=True, type=click.IntRange(min=1),
              help="How many example jobs to enqueue.")
@click.option("--failure-rate", default=0.1, show_default=True,
              type=click.FloatRange(0.0, 1.0), help="Chance that one attempt fails.")
@click.option("--concurrency", default=20, show_default=True, type=click.IntRange(min=1),
              help="The worker's concurrent job slots.")
def demo(dsn: str | None, jobs: int, failure_rate: float, concurrency: int) -> None:
    """Enqueue example jobs, run a worker on them, print queue_stats.

    Without a configured database this starts a throwaway PostgreSQL (the
    pgserver package from pgqueue[embedded], else the system's initdb) and
    deletes it afterwards. Ctrl-C stops the worker gracefully.
    """
    from .demo import run_demo

    result = run_demo(dsn, jobs=jobs, failure_rate=failure_rate, concurrency=concurrency)
    if result.interrupted:
        sys.exit(130)


# --- operating commands (status, jobs, retry, prune, workers, dashboard) ---------------
from .cli_admin import register  # noqa: E402

register(main)

# --- pgqueue batch: create from CSV, status, list, export ------------------------------
from .cli_batch import register as register_batch  # noqa: E402

register_batch(main)


# --- --help names each option's environment variable, in every command ----------------
def _show_envvars(command: click.Command) -> None:
    """Set ``show_envvar`` on every option that has an envvar, here and in subcommands."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            param.show_envvar = True
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _show_envvars(subcommand)


_show_envvars(main)
