"""What the dashboard reads beyond :mod:`pgqueue.admin`: job search, queue, workers,
charts, periodic schedules.

Invariants:
- Every statement is a file under ``sql/queries/`` (``dashboard_*``), run on the
  pool's autocommit connection with nothing prepared.
- A job list is keyset-paged on the id (newest first): live jobs and history are
  each read up to ``limit`` rows below the cursor and merged, so a deep page
  costs what the first does.
- Searches of history by args, error text or unique key (no index serves them)
  are always bounded by a time range on ``finished_at`` (the BRIN index). When
  none is given: the last :data:`DEFAULT_SEARCH_WINDOW`, or, when more jobs
  than :data:`DEFAULT_SEARCH_ROWS` finished in it, from the minute on where the
  newest that many began (by the leader's roll-ups), so a search reads about
  that many rows whatever the throughput. Live jobs searched by args or error
  text without a time range are read among the newest
  :data:`DEFAULT_SEARCH_ROWS` ids only (no index serves those either).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .._sql import query
from ..admin import MAX_LIST_LIMIT, validate_queue_name
from ..errors import InvalidArgumentError, InvalidJobError
from ..producer.params import dump_args, validate_task
from ..producer.tag_filter import no_tags, tag_filter
from .http import HttpError

__all__ = ["DEFAULT_SEARCH_ROWS", "DEFAULT_SEARCH_WINDOW", "KINDS", "JobFilter", "JobList",
           "search_jobs", "search_start"]

Conn = psycopg.Connection[Any]

LIVE_KINDS = ("queued", "running", "ready", "scheduled", "retrying", "blocked", "unclaimable")
FINAL_STATES = ("succeeded", "failed", "cancelled")
KINDS = LIVE_KINDS + FINAL_STATES
DEFAULT_SEARCH_WINDOW = timedelta(days=1)
#: About how many finished jobs a search without a time range reads at most.
DEFAULT_SEARCH_ROWS = 100_000
FILTER_ARGS = ("queue", "state", "task", "id", "args", "error", "unique_key", "batch", "since",
               "until", "cursor", "tag_mode")
"""The single-valued query arguments of a job list; ``tag`` may be repeated (one tag each)."""
_SEARCH_FIELDS = ("id", "args", "error", "unique_key", "batch_id", "since", "until")
_MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class JobFilter:
    """The filters of a job list, validated; None means "any"."""

    queue: str | None = None
    state: str | None = None
    task: str | None = None
    id: int | None = None
    args: Any = None
    error: str | None = None
    unique_key: str | None = None
    batch_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    cursor: int | None = None
    tags: tuple[str, ...] = ()
    """Jobs with every one of these tags (``tags_mode="all"``) or any (``"any"``)."""
    tags_mode: str = "all"

    def searching(self) -> bool:
        return any(getattr(self, name) is not None for name in _SEARCH_FIELDS)

    def query_args(self) -> dict[str, str | list[str]]:
        """The filter as query-string arguments (for links and forms); ``tag`` is a list."""
        out: dict[str, str | list[str]] = {}
        for name in ("queue", "state", "task", "id", "error", "unique_key", "batch_id"):
            value = getattr(self, name)
            if value is not None:
                out["batch" if name == "batch_id" else name] = str(value)
        if self.args is not None:
            out["args"] = json.dumps(self.args, ensure_ascii=False)
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None:
                out[name] = moment.isoformat()
        if self.tags:
            out["tag"] = list(self.tags)
            if self.tags_mode != "all":
                out["tag_mode"] = self.tags_mode
        return out

    def tag_params(self) -> dict[str, Any]:
        """The ``tags_all`` and ``tags_any`` parameters of the job list's queries."""
        wanted = tag_filter(self.tags or None, self.tags_mode)
        return no_tags() if wanted is None else wanted.params()


@dataclass(frozen=True)
class JobList:
    jobs: list[dict[str, Any]]
    next_cursor: int | None
    window: datetime | None = None
    """Set when history was searched only from this time on (the default window)."""
    live_from_id: int | None = None
    """Set when live jobs were searched only from this id on (the newest ids)."""
    notes: list[str] = field(default_factory=list)


def parse_filter(args: Mapping[str, str | None], *, limit: int = 50,
                 tags: Sequence[str] = ()) -> JobFilter:
    """A :class:`JobFilter` from query arguments (``tags``: the values of the repeated
    ``tag`` argument, blanks ignored); HttpError 400 naming a bad one."""
    state = args.get("state")
    if state is not None and state not in KINDS:
        raise HttpError(400, f"state must be one of {', '.join(KINDS)}; got {state!r}")
    raw_args = args.get("args")
    parsed_args: Any = None
    if raw_args is not None:
        try:
            parsed_args = json.loads(raw_args)
        except ValueError:
            raise HttpError(400, "args must be a JSON object, such as {\"order_id\": 42}") from None
        if not isinstance(parsed_args, dict):
            raise HttpError(400, "args must be a JSON object, such as {\"order_id\": 42}")
        try:  # what jsonb cannot hold (a NUL, a lone surrogate) is refused as on enqueue
            dump_args(parsed_args)
        except InvalidJobError as exc:
            raise HttpError(400, f"args: {exc}") from None
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise HttpError(400, f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {limit}")
    try:
        wanted_tags = tag_filter([t for t in tags if t] or None, args.get("tag_mode") or "all",
                                 field="tag")
    except InvalidArgumentError as exc:
        raise HttpError(400, str(exc)) from None
    return JobFilter(
        queue=_checked(validate_queue_name, args.get("queue")),
        state=state, task=_checked(validate_task, args.get("task")),
        id=_id(args.get("id"), "id"), args=parsed_args,
        error=_text(args.get("error"), "error"), unique_key=_text(args.get("unique_key"),
                                                                  "unique_key"),
        batch_id=_id(args.get("batch"), "batch"), since=_moment(args.get("since"), "since"),
        until=_moment(args.get("until"), "until"), limit=limit,
        cursor=_id(args.get("cursor"), "cursor"),
        tags=() if wanted_tags is None else wanted_tags.tags,
        tags_mode="all" if wanted_tags is None else wanted_tags.mode)


def search_jobs(conn: Conn, wanted: JobFilter, now: datetime) -> JobList:
    """Live and finished jobs matching ``wanted``, newest first, one page."""
    params: dict[str, Any] = {
        "queue": wanted.queue, "task": wanted.task, "id": wanted.id,
        "args": None if wanted.args is None else Jsonb(wanted.args),
        "error": wanted.error, "unique_key": wanted.unique_key, "batch_id": wanted.batch_id,
        "since": wanted.since, "until": wanted.until, "before_id": wanted.cursor,
        "limit": wanted.limit, **wanted.tag_params(),
    }
    rows: list[dict[str, Any]] = []
    live_from = None
    if wanted.state is None or wanted.state in LIVE_KINDS:
        if (wanted.args is not None or wanted.error is not None) and wanted.since is None \
                and wanted.id is None and wanted.batch_id is None:
            newest = fetch(conn, "dashboard_jobs_newest_id")[0]["newest"]
            if newest is not None and newest - DEFAULT_SEARCH_ROWS > 0:
                live_from = int(newest) - DEFAULT_SEARCH_ROWS + 1
        rows += fetch(conn, "dashboard_jobs_live",
                      {**params, "kind": wanted.state, "from_id": live_from})
    window = None
    if wanted.state is None or wanted.state in FINAL_STATES:
        history = {**params, "state": wanted.state}
        if not wanted.searching():
            by_tags = "job_history_by_tags" if wanted.tags else "dashboard_jobs_history"
            rows += fetch(conn, by_tags, history)
        else:
            unbounded = wanted.id is not None or wanted.batch_id is not None
            if wanted.since is None and not unbounded:
                window = history["since"] = search_start(conn, now)
            rows += fetch(conn, "dashboard_jobs_search", history)
    rows.sort(key=lambda row: row["id"], reverse=True)
    rows = rows[:wanted.limit]
    cursor = rows[-1]["id"] if len(rows) == wanted.limit else None
    return JobList(rows, cursor, window, live_from_id=live_from)


def search_start(conn: Conn, now: datetime, *, max_rows: int = DEFAULT_SEARCH_ROWS
                 ) -> datetime:
    """Where a search of history without a time range starts (see the module's note)."""
    since = now - DEFAULT_SEARCH_WINDOW
    rows = fetch(conn, "dashboard_search_window", {"since": since, "max_rows": max_rows})
    start = rows[0]["start"] if rows else None
    return since if start is None else max(since, start)


def queue_detail(conn: Conn, queue: str) -> dict[str, Any] | None:
    """One queue's row of pgqueue.queue_stats (exact: it counts), for the API."""
    rows = fetch(conn, "dashboard_queue_get", {"queue": queue})
    return rows[0] if rows else None


def workers(conn: Conn) -> list[dict[str, Any]]:
    return fetch(conn, "dashboard_workers_list")


def periodic(conn: Conn) -> list[dict[str, Any]]:
    return fetch(conn, "dashboard_periodic_list")


def fetch(conn: Conn, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query(name), params, prepare=False).fetchall()
    return [{k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}
            for row in rows]


def _checked(check: Any, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check(value)  # type: ignore[no-any-return]
    except (InvalidArgumentError, InvalidJobError) as exc:
        raise HttpError(400, str(exc)) from None


def _id(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    text = text.strip().lstrip("#")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= _MAX_ID:
        raise HttpError(400, f"{name} must be a whole number from 1 to {_MAX_ID}, "
                             f"got {text[:40]!r}")
    return int(text)


def _text(text: str | None, name: str) -> str | None:
    if text is None:
        return None
    if len(text) > 255 or "\x00" in text:
        raise HttpError(400, f"{name} must be at most 255 characters, without NUL")
    return text


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise HttpError(400, f"{name} must be a date and time such as 2025-01-31T10:00, "
                             f"got {text[:40]!r}") from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment


def queue_limits(conn: Conn, queue: str) -> dict[str, Any]:
    """What a queue's limits count now: running jobs and starts in the rate window."""
    rows = fetch(conn, "dashboard_queue_limits", {"queue": queue})
    return rows[0] if rows else {}
