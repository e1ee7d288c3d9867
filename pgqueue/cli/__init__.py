"""The ``pgqueue`` command line: the group, its error translation, and the small commands.

Each other command group lives in a module of its own and registers itself on
``main``: ``cli.worker`` (worker), ``cli.control`` (cancel, queue, periodic),
``cli.admin`` (status, jobs, retry, prune, workers, dashboard), ``cli.batch`` (batch).
Commands import what they use inside their body, so ``pgqueue --help`` stays quick.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import psycopg
from psycopg import errors as pg_errors

from .. import _dsn
from ..errors import PgQueueError, QueueFullError
from .admin import register as register_admin
from .batch import register as register_batch
from .common import DSN_HELP, require_dsn
from .control import register as register_control
from .worker import load_registry
from .worker import register as register_worker

__all__ = ["load_registry", "main"]


def _missing_schema(exc: psycopg.Error) -> bool:
    """Whether ``exc`` says a pgqueue table, view, function or the schema is missing."""
    return (isinstance(exc, pg_errors.UndefinedTable | pg_errors.UndefinedFunction
                       | pg_errors.InvalidSchemaName)
            and "pgqueue" in (exc.diag.message_primary or ""))


class _Group(click.Group):
    """Turns pgqueue's own errors, and a missing schema, into one clear line and exit 1
    (4 for a full queue: retry later)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PgQueueError as exc:
            click.echo(f"pgqueue: error: {_dsn.redact(str(exc))}", err=True)
            sys.exit(4 if isinstance(exc, QueueFullError) else 1)
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
@click.option("--dsn", envvar="PGQUEUE_DSN", help=DSN_HELP)
@click.option(
    "--print-sql", is_flag=True, help="Print the migrations as SQL instead of applying them."
)
def migrate(dsn: str | None, print_sql: bool) -> None:
    """Create or upgrade the pgqueue schema."""
    from ..migrate import latest_version, migration_sql
    from ..migrate import migrate as run_migrate

    if print_sql:
        click.echo(migration_sql(), nl=False)
        return
    with _dsn.connect(require_dsn(dsn), autocommit=True) as conn:
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
@click.option("--tag", "tags", multiple=True,
              help="A tag for the job (repeat for more; at most 20, 1-100 characters each).")
@click.option("--meta", "meta_json", help="Job metadata as a JSON object.")
@click.option("--unique-for", type=float,
              help="Seconds a job created with --unique-key holds it, finished or not "
                   "(throttle).")
@click.option("--debounce", type=float,
              help="Seconds after the last enqueue of --unique-key the job runs: a pending "
                   "job of the key is pushed out.")
@click.option("--on-conflict", type=click.Choice(["keep", "replace"]), default="keep",
              show_default=True,
              help="With --debounce: keep the pending job's args, meta and tags, or replace "
                   "them with these.")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=DSN_HELP)
def enqueue(
    task: str,
    args_json: str,
    app: str | None,
    queue: str | None,
    priority: int | None,
    delay: float | None,
    max_attempts: int | None,
    unique_key: str | None,
    tags: tuple[str, ...],
    meta_json: str | None,
    unique_for: float | None,
    debounce: float | None,
    on_conflict: Any,
    dsn: str | None,
) -> None:
    """Enqueue one job and print its id (committed at once).

    With --unique-key, a taken key prints the holder's id. Without --app, warns
    when no running worker would take the task from its queue.
    """
    from .._sql import query
    from ..producer.enqueue import enqueue as run_enqueue
    from ..tasks import EnqueueOptions

    args = _json_option(args_json, "--args")
    meta = None if meta_json is None else _json_option(meta_json, "--meta")
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
    with _dsn.connect(require_dsn(dsn)) as conn:
        job_id = run_enqueue(
            conn, task, args, queue=queue, delay=delay, unique_key=unique_key,
            priority=declared.priority if priority is None else priority,
            max_attempts=declared.max_attempts if max_attempts is None else max_attempts,
            tags=list(tags) or None, meta=meta, unique_for=unique_for, debounce=debounce,
            on_conflict=on_conflict)
        row = None if app else conn.execute(query("worker_queues_for_task"),
                                            {"task": task}).fetchone()
    click.echo(job_id)
    if row is not None and queue not in row[0]:
        elsewhere = (f"; running workers take it from {', '.join(row[0])}" if row[0] else "")
        click.echo(f"pgqueue: warning: no running worker takes task {task!r} from queue "
                   f"{queue!r}{elsewhere}. Pass --app module:registry to use the task's "
                   "declared queue and options, or --queue.", err=True)


def _json_option(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None


@main.command("grafana-dashboard")
def grafana_dashboard() -> None:
    """Print the Grafana dashboard JSON for the worker's Prometheus metrics."""
    from ..observability.grafana import dashboard_json

    click.echo(dashboard_json(), nl=False)


@main.command("prometheus-rules")
@click.option("--path", "show_path", is_flag=True,
              help="Print where the installed rules file is instead of its text.")
def prometheus_rules(show_path: bool) -> None:
    """Print the Prometheus alert rules for the worker's metrics."""
    from ..observability.grafana import rules_path, rules_yaml

    click.echo(rules_path() if show_path else rules_yaml(), nl=show_path)


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
    from ..demo import run_demo

    result = run_demo(dsn, jobs=jobs, failure_rate=failure_rate, concurrency=concurrency)
    if result.interrupted:
        sys.exit(130)


# --- the other command groups: worker; cancel, queue, periodic; operating; batch -------
register_worker(main)
register_admin(main)
register_control(main)  # after admin: it adds `cancel` to the `jobs` group too
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
