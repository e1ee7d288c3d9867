"""``pgqueue batch``: create a batch from a CSV file, follow it, export its outcomes.

Exit codes as the operating commands: 0 ok; 1 error (database); 2 usage (a bad
file, a bad row); 3 not found (an unknown batch id). ``--json`` for scripts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TextIO

import click
import psycopg

from .. import _dsn
from ..admin import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, InvalidArgumentError, batch_export
from ..errors import InvalidJobError
from ..producer.batches import BatchInfo, batch, get_batch, list_batches
from .admin import EXIT_NOT_FOUND, dsn_option, format_table, json_option
from .common import echo_json, require_dsn
from .reads import connect_reads, read_dsn_option

__all__ = ["progress_bar", "register"]

CHUNK = 5000
BAR_WIDTH = 30
_JOB_INDEX = re.compile(r"^jobs\[(\d+)\]: ")


def progress_bar(info: BatchInfo, width: int = BAR_WIDTH) -> str:
    """``[#########.....]  60%  6,000 of 10,000 done``."""
    fraction = info.done / info.total if info.total else (1.0 if info.finished else 0.0)
    filled = round(fraction * width)
    return (f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%}  "
            f"{info.done:,} of {info.total:,} done")


def _connect(dsn: str | None, **kwargs: Any) -> psycopg.Connection[Any]:
    return _dsn.connect(require_dsn(dsn), **kwargs)


def _not_found(batch_id: int) -> None:
    click.echo(f"pgqueue: error: no batch has id {batch_id}", err=True)
    sys.exit(EXIT_NOT_FOUND)


@click.group("batch")
def batch_group() -> None:
    """Create batches from CSV files, follow their progress, export their outcomes."""


# --- create ------------------------------------------------------------------------------


def _csv_args(handle: TextIO, lines: list[int]) -> Iterator[dict[str, str]]:
    """Each data row as an args dict (header names → cell text); records line numbers."""
    reader = csv.DictReader(handle)
    header = reader.fieldnames
    if not header:
        raise click.UsageError("the CSV file is empty: its first line must name the args")
    if any(not name for name in header) or len(set(header)) != len(header):
        raise click.UsageError(f"the CSV header must name each column once: {header}")
    for row in reader:
        if None in row or None in row.values():
            raise click.UsageError(f"CSV line {reader.line_num}: has {len(header)} columns "
                                   "in its header but not in this row")
        lines.append(reader.line_num)
        yield row  # type: ignore[misc]  # no None key or value, checked above


def _open_csv(path: Path) -> TextIO:
    if str(path) == "-":  # stdin, with a byte-order mark tolerated as for files
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _chunks(rows: Iterator[dict[str, str]], size: int) -> Iterator[list[dict[str, str]]]:
    chunk: list[dict[str, str]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@batch_group.command("create")
@click.argument("task")
@click.option("--from-csv", "csv_path", required=True,
              type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
              help="One job per row; the header names the args ('-' reads stdin).")
@click.option("--queue", default="default", show_default=True)
@click.option("--name", help="A label for the batch (default: the file's name).")
@click.option("--callback", help="A task enqueued once when every job has finished.")
@click.option("--callback-queue", help="The callback's queue (default: --queue).")
@json_option
@dsn_option
def batch_create(task: str, csv_path: Path, queue: str, name: str | None,
                 callback: str | None, callback_queue: str | None, as_json: bool,
                 dsn: str | None) -> None:
    """Enqueue one TASK job per CSV row as one batch, in one transaction; print its id.

    Each row's cells become the job's args, named by the header, as strings.
    Nothing is enqueued unless every row is valid.
    """
    label = name or ("stdin" if str(csv_path) == "-" else csv_path.name)[:200]
    lines: list[int] = []
    count = 0
    with _open_csv(csv_path) as handle, _connect(dsn) as conn:
        try:
            with batch(conn, name=label, callback=callback,
                       callback_queue=callback_queue or (queue if callback else None)) as opened:
                for chunk in _chunks(_csv_args(handle, lines), CHUNK):
                    try:
                        opened.enqueue_many({"task": task, "args": row, "queue": queue}
                                            for row in chunk)
                    except InvalidJobError as exc:
                        raise click.UsageError(_with_line(str(exc), lines, count)) from None
                    count += len(chunk)
        except InvalidJobError as exc:
            raise click.UsageError(str(exc)) from None
        except UnicodeDecodeError as exc:
            raise click.UsageError(f"the CSV file is not UTF-8: {exc}") from None
    if as_json:
        echo_json({"batch_id": opened.id, "jobs": count, "task": task, "queue": queue,
                    "name": label})
    else:
        click.echo(opened.id)
        click.echo(f"batch {opened.id}: {count:,} {task} job{'s' if count != 1 else ''} "
                   f"on queue {queue}", err=True)


def _with_line(message: str, lines: list[int], offset: int) -> str:
    match = _JOB_INDEX.match(message)
    if not match:
        return message
    return f"CSV line {lines[offset + int(match[1])]}: {message[match.end():]}"


# --- status, list ------------------------------------------------------------------------


def _describe(info: BatchInfo) -> str:
    title = f"batch {info.id}" + (f" ({info.name})" if info.name else "")
    if info.finished_at is not None:
        title += f": finished {info.finished_at.isoformat(timespec='seconds')}"
    elif info.sealed_at is None:
        title += ": open (not sealed, more jobs may join)"
    else:
        title += ": running"
    lines = [title, progress_bar(info),
             f"succeeded {info.succeeded:,}  failed {info.failed:,}  "
             f"cancelled {info.cancelled:,}  pending {info.pending:,} "
             f"(running {info.running:,})"]
    times = f"created {info.created_at.isoformat(timespec='seconds')}"
    if info.started_at is not None:
        times += f", first job started {info.started_at.isoformat(timespec='seconds')}"
    lines.append(times)
    if info.callback_task:
        job = f" (job {info.callback_job_id})" if info.callback_job_id else " (when finished)"
        lines.append(f"callback: {info.callback_task}{job}")
    return "\n".join(lines)


@batch_group.command("status")
@click.argument("batch_id", type=click.IntRange(min=1))
@click.option("--watch", is_flag=True, help="Refresh every --interval seconds until finished.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, show_default=True)
@json_option
@dsn_option
@read_dsn_option
def batch_status(batch_id: int, watch: bool, interval: float, as_json: bool,
                 dsn: str | None, read_dsn: str | None) -> None:
    """Counts by outcome and a progress bar; exit 3 for an unknown id."""
    with connect_reads(dsn, read_dsn) as conn:
        while True:
            info = get_batch(conn, batch_id)
            if info is None:
                _not_found(batch_id)
                return
            if as_json:
                echo_json({**dataclasses.asdict(info), "done": info.done})
            else:
                if watch:
                    click.clear()
                click.echo(_describe(info))
            if not watch or info.finished:
                return
            try:
                time.sleep(interval)
            except KeyboardInterrupt:
                return


@batch_group.command("list")
@click.option("--limit", type=click.IntRange(1, MAX_LIST_LIMIT), default=DEFAULT_LIST_LIMIT,
              show_default=True)
@click.option("--before", "before_id", type=click.IntRange(min=1),
              help="Show batches older than this id.")
@json_option
@dsn_option
@read_dsn_option
def batch_list(limit: int, before_id: int | None, as_json: bool, dsn: str | None,
               read_dsn: str | None) -> None:
    """Batches newest first, with their counts."""
    with connect_reads(dsn, read_dsn) as conn:
        try:
            found = list_batches(conn, limit=limit, before_id=before_id)
        except InvalidArgumentError as exc:
            raise click.UsageError(str(exc)) from None
    if as_json:
        echo_json({"batches": [dataclasses.asdict(b) for b in found]})
        return
    columns = ["id", "name", "total", "succeeded", "failed", "cancelled", "pending",
               "created_at", "finished_at"]
    rows = [[b.id, b.name, b.total, b.succeeded, b.failed, b.cancelled, b.pending,
             b.created_at, b.finished_at] for b in found]
    click.echo(format_table(columns, rows) if rows else "no batches yet")
    if len(found) == limit:
        click.echo(f"more: --before {found[-1].id}")


# --- export ------------------------------------------------------------------------------


@batch_group.command("export")
@click.argument("batch_id", type=click.IntRange(min=1))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), required=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file instead of stdout.")
@dsn_option
@read_dsn_option
def batch_export_command(batch_id: int, fmt: str, output: Path | None, dsn: str | None,
                         read_dsn: str | None) -> None:
    """One row per job: id, task, args, state, attempts, result or error, duration.

    CSV has one column per top-level scalar arg (args.<name>); JSON lines carry
    the whole args object. Rows stream from the database, so any size fits.
    """
    with connect_reads(dsn, read_dsn, autocommit=False) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        if get_batch(conn, batch_id) is None:
            _not_found(batch_id)
            return
        target = output.open("w", encoding="utf-8", newline="") if output else \
            nullcontext(sys.stdout)
        keys = batch_export.scalar_arg_keys(conn, batch_id) if fmt == "csv" else []
        with target as out:
            rows = batch_export.iter_jobs(conn, batch_id)
            if fmt == "csv":
                count = batch_export.write_csv(rows, keys, out)
            else:
                count = batch_export.write_jsonl(rows, out)
    if output:
        click.echo(f"exported {count:,} job{'s' if count != 1 else ''} of batch {batch_id} "
                   f"to {output}", err=True)


def register(main: click.Group) -> None:
    """Add ``pgqueue batch`` to the ``pgqueue`` group (idempotent)."""
    if batch_group.name not in main.commands:
        main.add_command(batch_group)
