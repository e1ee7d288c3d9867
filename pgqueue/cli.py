"""The ``pgqueue`` command line."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from . import _dsn
from .errors import PgQueueError

__all__ = ["main"]

_DSN_HELP = "PostgreSQL connection string; else $PGQUEUE_DSN, else $DATABASE_URL."


def _require_dsn(dsn: str | None) -> str:
    resolved = _dsn.resolve_dsn(dsn)
    if not resolved:
        raise click.UsageError("no database given: pass --dsn or set PGQUEUE_DSN or DATABASE_URL")
    return resolved


class _Group(click.Group):
    """Turns pgqueue's own errors into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PgQueueError as exc:
            click.echo(f"pgqueue: error: {_dsn.redact(str(exc))}", err=True)
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
@click.option("--queue", default="default", show_default=True)
@click.option("--priority", default=0, show_default=True, type=int)
@click.option("--delay", type=float, help="Seconds before the job may run.")
@click.option("--max-attempts", type=int)
@click.option("--unique-key")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=_DSN_HELP)
def enqueue(  # noqa: PLR0917  (click passes options positionally)
    task: str,
    args_json: str,
    queue: str,
    priority: int,
    delay: float | None,
    max_attempts: int | None,
    unique_key: str | None,
    dsn: str | None,
) -> None:
    """Enqueue one job and print its id (committed at once)."""
    from .producer import enqueue as run_enqueue

    try:
        args = json.loads(args_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--args") from None
    with _dsn.connect(_require_dsn(dsn)) as conn:
        job_id = run_enqueue(conn, task, args, queue=queue, priority=priority, delay=delay,
                             max_attempts=max_attempts, unique_key=unique_key)
    click.echo(job_id)


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
