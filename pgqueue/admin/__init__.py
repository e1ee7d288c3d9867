"""Operating a queue from Python: inspect jobs and workers, retry, prune.

Invariants:
- Every function runs on the caller's connection (any object the producer accepts:
  psycopg, SQLAlchemy, Django) and never commits: the caller's
  transaction decides (with an autocommit connection, each statement commits).
- A retried job keeps its id. Its row moves from ``pgqueue.finished_jobs`` back
  to ``pgqueue.jobs`` in one statement (the SQL function ``pgqueue.retry_jobs``),
  so no reader ever sees it in both tables or in neither.
- Input is validated before the first statement runs; a bad value raises
  :class:`InvalidArgumentError` naming the argument.

``batch_export`` streams one batch's jobs out as CSV or JSON lines
(``pgqueue batch export``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from psycopg.rows import dict_row, tuple_row

from .._sql import query
from ..errors import InvalidArgumentError, InvalidJobError
from ..producer.connections import SyncHandle, own_cursor, sync_connection
from ..producer.params import validate_queue, validate_task
from ..producer.tag_filter import TAG_MODES, no_tags, tag_filter
from ..types import JobState

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "MAX_LIST_LIMIT",
    "TAG_MODES",
    "InvalidArgumentError",
    "JobDetail",
    "JobPage",
    "JobSummary",
    "RetryOutcome",
    "WorkerInfo",
    "get_job",
    "list_jobs",
    "list_queues",
    "list_workers",
    "prune",
    "prune_counts",
    "retry",
    "retry_failed",
]

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 1000
DEFAULT_PRUNE_BATCH = 10_000
_MAX_JOB_ID = 2**63 - 1


class RetryOutcome(StrEnum):
    """What :func:`retry` did, spelled as the SQL function ``pgqueue.retry`` says it."""

    RETRIED = "retried"
    """The job is queued again with the same id, attempt count reset."""
    NOT_FOUND = "not_found"
    """No job has this id (it may have been pruned)."""
    LIVE = "live"
    """The job is queued or running already; nothing changed."""
    SUCCEEDED = "succeeded"
    """The job succeeded; succeeded jobs are not retried."""
    UNIQUE_KEY_TAKEN = "unique_key_taken"
    """A live job holds this job's unique_key; nothing changed."""


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One row of a job list."""

    id: int
    queue: str
    task: str
    state: str
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    last_error: str | None
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JobDetail:
    """Everything stored about one job, live or finished.

    ``errors`` holds the newest errors (up to 10), oldest first; each is a dict
    with ``attempt``, ``kind``, ``message``, ``at`` and usually ``traceback``.
    ``tags`` and ``meta`` are the job's labels and metadata (README: "Tags");
    ``snoozes``: how often the job snoozed (``pgqueue.Snooze``); ``progress``:
    the latest progress it reported (``{"done", "total", "message"}``) or None.
    """

    id: int
    queue: str
    task: str
    args: Any
    priority: int
    state: str
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    worker_id: str | None
    unique_key: str | None
    last_error: str | None
    errors: list[dict[str, Any]]
    trace_context: str | None
    result: Any
    worker_host: str | None
    worker_pid: int | None
    tags: list[str] = field(default_factory=list)
    snoozes: int = 0
    progress: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def trace_id(self) -> str | None:
        """The W3C trace id of the producer's span, if the job carries one."""
        parts = (self.trace_context or "").split("-")
        return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of :func:`list_jobs`; pass ``next_cursor`` to get the next page."""

    jobs: list[JobSummary]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One registered worker process."""

    id: str
    host: str
    pid: int
    queues: list[str]
    tasks: list[str]
    concurrency: int
    busy: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_seconds: float


def retry(conn: SyncHandle, job_id: int) -> RetryOutcome:
    """Queue a failed or cancelled job again; it keeps its id.

    The job runs again from attempt 1 with its ``max_attempts``; its past errors
    are kept. Anything else (an unknown id, a live or succeeded job, a unique key
    that a live job holds) changes nothing and says so in the outcome.

    Example::

        with psycopg.connect(dsn, autocommit=True) as conn:
            if pgqueue.retry(conn, 42) is pgqueue.RetryOutcome.RETRIED: ...
    """
    _check_job_id(job_id)
    ((outcome,),) = _fetch(conn, "admin_job_retry", {"job_id": job_id})
    return RetryOutcome(outcome)


def retry_failed(conn: SyncHandle, queue: str | None = None) -> int:
    """Queue again every failed job (of ``queue``, else of every queue); return how many.

    Jobs whose unique key a live job holds are left as they are.
    """
    if queue is not None:
        queue = _valid(validate_queue, queue)
    ((count,),) = _fetch(conn, "admin_jobs_retry_failed", {"queue": queue})
    return int(count)


def prune(conn: SyncHandle, older_than: timedelta | float, *,
          batch: int = DEFAULT_PRUNE_BATCH) -> int:
    """Delete finished jobs that finished more than ``older_than`` ago; return how many.

    ``older_than`` is a timedelta or seconds (>= 0). Deletes in batches of
    ``batch`` rows, one statement each; on an autocommit connection every batch
    commits on its own, so a long prune holds few locks.
    """
    seconds = _age_seconds(older_than)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidArgumentError(f"batch must be an integer >= 1, got {batch!r}")
    total = 0
    while True:
        rows = _fetch(conn, "admin_jobs_prune", {"older_than_seconds": seconds, "batch": batch})
        total += len(rows)
        if len(rows) < batch:
            return total


def prune_counts(conn: SyncHandle, older_than: timedelta | float) -> dict[str, int]:
    """What :func:`prune` would delete now, as ``{state: jobs}``; deletes nothing.

    States with nothing to delete are left out, so an empty dict means nothing
    is that old.
    """
    seconds = _age_seconds(older_than)
    rows = _fetch(conn, "admin_jobs_prune_count", {"older_than_seconds": seconds})
    return {str(state): int(jobs) for state, jobs in rows}


def list_jobs(conn: SyncHandle, *, queue: str | None = None,
              state: str | None = None, task: str | None = None,
              tags: list[str] | tuple[str, ...] | None = None, tags_mode: str = "all",
              limit: int = DEFAULT_LIST_LIMIT, cursor: int | None = None) -> JobPage:
    """Jobs newest first (by id), live and finished, optionally filtered.

    Args:
        queue, state, task: keep only jobs with this queue, state (a
            :class:`~pgqueue.JobState` value) or task.
        tags: keep only jobs with these tags: every one of them with
            ``tags_mode="all"`` (the default), at least one with ``"any"``.
        limit: jobs per page, 1 to 1000.
        cursor: the ``next_cursor`` of the previous page; None for the first.

    The page is found by key (ids below the cursor), so a page deep in a long
    history costs the same as the first; so does a page of the jobs with a tag
    (README, "Tags", for what it costs over a long history).

    Example::

        page = pgqueue.list_jobs(conn, tags=["customer:42"], state="failed")
    """
    params = list_jobs_params(queue=queue, state=state, task=task, tags=tags,
                              tags_mode=tags_mode, limit=limit, cursor=cursor)
    rows = _fetch(conn, "admin_jobs_list", params, dicts=True)
    if tags is not None and params["state"] not in ("queued", "running"):
        # By tag, history comes from the tag table (admin_jobs_list reads live jobs only).
        rows += _fetch(conn, "job_history_by_tags", params, dicts=True)
        rows = sorted(rows, key=lambda row: row["id"], reverse=True)[:params["limit"]]
    wanted = set(field_names(JobSummary))
    jobs = [JobSummary(**{k: v for k, v in row.items() if k in wanted}) for row in rows]
    next_cursor = jobs[-1].id if len(jobs) == params["limit"] else None
    return JobPage(jobs, next_cursor)


def list_jobs_params(*, queue: str | None = None, state: str | None = None,
                     task: str | None = None, tags: object = None, tags_mode: object = "all",
                     limit: int = DEFAULT_LIST_LIMIT,
                     cursor: int | None = None) -> dict[str, Any]:
    """The validated parameters of ``admin_jobs_list`` (for :func:`list_jobs` and the
    benchmarks, which explain the statement)."""
    wanted = tag_filter(tags, tags_mode)
    return {
        "queue": None if queue is None else _valid(validate_queue, queue),
        "state": None if state is None else validate_state(state),
        "task": None if task is None else _valid(validate_task, task),
        **(no_tags() if wanted is None else wanted.params()),
        "limit": validate_limit(limit),
        "before_id": None if cursor is None else _check_job_id(cursor, "cursor"),
    }


def get_job(conn: SyncHandle, job_id: int) -> JobDetail | None:
    """Everything about one job, or None when no job has this id."""
    _check_job_id(job_id)
    rows = _fetch(conn, "admin_job_get", {"job_id": job_id}, dicts=True)
    return JobDetail(**rows[0]) if rows else None


def list_workers(conn: SyncHandle) -> list[WorkerInfo]:
    """Every registered worker, with its busy slots and heartbeat age."""
    rows = _fetch(conn, "admin_workers_list", dicts=True)
    return [WorkerInfo(**{**row, "heartbeat_age_seconds": float(row["heartbeat_age_seconds"])})
            for row in rows]


def list_queues(conn: SyncHandle) -> list[dict[str, Any]]:
    """The rows of the ``pgqueue.queue_stats`` view, by queue name.

    Each row is a dict of the view's columns (numbers as int or float), so a
    column added by a later migration appears here too.
    """
    rows = _fetch(conn, "admin_queues_list", dicts=True)
    return [{key: _plain_number(value) for key, value in row.items()} for row in rows]


def _fetch(conn: SyncHandle, name: str, params: Mapping[str, Any] | None = None, *,
           dicts: bool = False) -> list[Any]:
    """Run one query on pgqueue's own cursor on the caller's connection (see
    :mod:`pgqueue.producer.connections`): default loaders, nothing prepared."""
    with own_cursor(sync_connection(conn), dict_row if dicts else tuple_row) as cur:
        return cur.execute(query(name), params, prepare=False).fetchall()


# --- validation shared with the CLI and the dashboard ---------------------------------


def validate_state(state: object) -> str:
    """``state`` if it is a job state, else InvalidArgumentError listing the states."""
    if isinstance(state, str) and state in JobState.__members__.values():
        return state
    choices = ", ".join(s.value for s in JobState)
    raise InvalidArgumentError(f"state must be one of {choices}; got {state!r}")


def validate_queue_name(queue: object) -> str:
    """``queue`` if it is a valid queue name, else InvalidArgumentError."""
    return _valid(validate_queue, queue)


def validate_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidArgumentError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, "
                                   f"got {limit!r}")
    return limit


def field_names(cls: type[Any]) -> list[str]:
    """The field names of one of this module's dataclasses, in order."""
    return [f.name for f in fields(cls)]


def _age_seconds(older_than: object) -> float:
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise InvalidArgumentError(f"older_than must be a duration >= 0, got {older_than!r}")
    return float(seconds)


def _check_job_id(job_id: object, name: str = "job_id") -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int) or not 1 <= job_id <= _MAX_JOB_ID:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {job_id!r}")
    return job_id


def _valid(check: Any, value: object) -> str:
    try:
        return check(value)  # type: ignore[no-any-return]
    except InvalidJobError as exc:
        raise InvalidArgumentError(str(exc)) from None


def _plain_number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value
