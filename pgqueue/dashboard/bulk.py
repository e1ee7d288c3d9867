"""Bulk actions on many jobs: retry, cancel or delete a selection or a whole filter.

Invariants:
- The work is done server-side in bounded batches of :data:`BATCH_SIZE` ids, one
  statement each on an autocommit connection: no statement holds many locks, and
  a long action makes progress batch by batch.
- At most :data:`MAX_JOBS` jobs are touched by one request; the answer says when
  more matched, so the operator can run it again.
- Retry applies only to failed or cancelled jobs (they keep their ids), cancel
  only to live jobs, delete only to finished jobs (as prune does); every other
  selected job is counted as skipped, never changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from . import data
from .data import Conn, JobFilter
from .http import HttpError

__all__ = ["ACTIONS", "BATCH_SIZE", "MAX_JOBS", "BulkResult", "apply", "select_ids"]

ACTIONS = ("retry", "cancel", "delete")
BATCH_SIZE = 500
MAX_JOBS = 100_000
_REASON = "cancelled from the dashboard"


@dataclass(frozen=True)
class BulkResult:
    action: str
    selected: int
    changed: int
    more: bool
    """True when more jobs matched than one request handles (MAX_JOBS)."""

    @property
    def skipped(self) -> int:
        return self.selected - self.changed

    def message(self) -> str:
        verb = {"retry": "retried", "cancel": "cancelled", "delete": "deleted"}[self.action]
        jobs = "job" if self.selected == 1 else "jobs"
        text = f"{self.changed} of {self.selected} {jobs} {verb}"
        if self.skipped:
            text += f"; {self.skipped} skipped (not in a state this action applies to)"
        if self.more:
            text += f"; more than {MAX_JOBS} matched: run it again for the rest"
        return text


def check_action(action: object) -> str:
    if action not in ACTIONS:
        raise HttpError(400, f"action must be one of {', '.join(ACTIONS)}; got {action!r}")
    return str(action)


def select_ids(conn: Conn, *, ids: Sequence[int] = (), wanted: JobFilter | None = None,
               now: datetime) -> tuple[list[int], bool]:
    """The selected ids: given ones, or every job matching ``wanted`` (up to
    MAX_JOBS, newest first); and whether more matched."""
    if wanted is None:
        unique = sorted(set(ids), reverse=True)
        if len(unique) > MAX_JOBS:
            raise HttpError(400, f"at most {MAX_JOBS} jobs at once; got {len(unique)}")
        return unique, False
    found: list[int] = []
    page = replace(wanted, limit=1000, cursor=None)
    while True:
        listed = data.search_jobs(conn, page, now)
        found.extend(row["id"] for row in listed.jobs)
        if len(found) > MAX_JOBS:
            return found[:MAX_JOBS], True
        if listed.next_cursor is None:
            return found, False
        page = replace(page, cursor=listed.next_cursor)


def apply(conn: Conn, action: str, ids: Sequence[int], *, more: bool = False) -> BulkResult:
    """Run ``action`` on ``ids`` in batches of BATCH_SIZE; count what changed."""
    check_action(action)
    changed = 0
    for chunk in _chunks(ids):
        changed += _run(conn, action, chunk)
    return BulkResult(action, len(ids), changed, more)


def _run(conn: Conn, action: str, chunk: list[int]) -> int:
    if action == "retry":
        rows: list[dict[str, Any]] = data.fetch(conn, "job_retry_many", {"ids": chunk})
        return int(rows[0]["retried"])
    if action == "cancel":
        rows = data.fetch(conn, "job_cancel_many", {"ids": chunk, "reason": _REASON})
        return sum(int(r["jobs"]) for r in rows if r["outcome"] in ("cancelled", "requested"))
    return len(data.fetch(conn, "dashboard_bulk_delete", {"ids": chunk}))


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), BATCH_SIZE):
        yield list(ids[start:start + BATCH_SIZE])
