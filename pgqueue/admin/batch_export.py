"""Export a batch's jobs, one row per job, as CSV or JSON lines.

Invariant: rows are streamed from a server-side cursor, a few thousand at a
time, so a batch of any size is written in constant memory. Read them in one
transaction (the caller's connection must not be in autocommit mode); with
REPEATABLE READ the CSV header and the rows see one snapshot.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import psycopg

from .._sql import query

__all__ = ["ARG_COLUMNS_MAX", "ExportRow", "iter_jobs", "scalar_arg_keys", "write_csv",
           "write_jsonl"]

ARG_COLUMNS_MAX = 100
ITERSIZE = 2000
CSV_FIXED = ("id", "task")
CSV_TAIL = ("state", "attempts", "result", "error", "duration_seconds", "finished_at")


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One job of the batch, as exported."""

    id: int
    task: str
    state: str
    attempts: int
    args: dict[str, Any]
    result: Any
    error: str | None
    duration_seconds: float | None
    finished_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "task": self.task, "args": self.args, "state": self.state,
                "attempts": self.attempts, "result": self.result, "error": self.error,
                "duration_seconds": self.duration_seconds,
                "finished_at": None if self.finished_at is None
                else self.finished_at.isoformat()}


def scalar_arg_keys(conn: psycopg.Connection[Any], batch_id: int,
                    max_keys: int = ARG_COLUMNS_MAX) -> list[str]:
    """Top-level args keys holding a scalar in some job of the batch, by name."""
    rows = conn.execute(query("batch_export_arg_keys"),
                        {"batch_id": batch_id, "max_keys": max_keys}).fetchall()
    return [row[0] for row in rows]


def iter_jobs(conn: psycopg.Connection[Any], batch_id: int) -> Iterator[ExportRow]:
    """Every job of the batch in id order, through a server-side cursor."""
    with conn.cursor(name=f"pgqueue_batch_export_{batch_id}") as cur:
        cur.itersize = ITERSIZE
        cur.execute(query("batch_export"), {"batch_id": batch_id})
        for row in cur:
            yield ExportRow(*row)


def write_jsonl(rows: Iterator[ExportRow], out: TextIO) -> int:
    """One JSON object per line with the full args; returns the rows written."""
    count = 0
    for row in rows:
        out.write(json.dumps(row.as_json(), ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(rows: Iterator[ExportRow], arg_keys: list[str], out: TextIO) -> int:
    """A header, then one line per job: id, task, one ``args.<key>`` column per key,
    state, attempts, result (JSON), error, duration_seconds, finished_at (ISO 8601).

    A missing arg or a null is an empty cell; strings are written as they are,
    other values as JSON. Returns the rows written.
    """
    writer = csv.writer(out)
    writer.writerow([*CSV_FIXED, *(f"args.{k}" for k in arg_keys), *CSV_TAIL])
    count = 0
    for row in rows:
        writer.writerow([
            row.id, row.task, *(_cell(row.args.get(k)) for k in arg_keys),
            row.state, row.attempts,
            "" if row.result is None else json.dumps(row.result, ensure_ascii=False),
            row.error or "",
            "" if row.duration_seconds is None else f"{row.duration_seconds:.3f}",
            "" if row.finished_at is None else row.finished_at.isoformat(),
        ])
        count += 1
    return count


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
