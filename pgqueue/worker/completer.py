"""Write attempt outcomes in batches: one statement for many jobs.

Invariant: every write is fenced on (job id, attempt, worker id, state running)
in SQL; an outcome the database did not apply is reported as lost, never
retried as another write. Outcomes stay pending (and heartbeated) until
written; a failed write is retried after a pause.

Jobs that finish with dependents or in a batch are settled (job_after_finish)
after their outcome commits, in a statement of its own: it must see every
transaction that committed before, such as a dependent enqueued while the job
was finishing. If that second step fails, the leader's sweep settles them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from ..events import (
    ConnectionLost,
    ConnectionRestored,
    Event,
    JobFinished,
    JobLost,
    ServiceError,
)
from .executor import Outcome
from .session import Session, is_connection_error

__all__ = ["Completer"]

BATCH_MAX = 1000


class Completer:
    def __init__(self, session: Session, worker_id: str, emit: Callable[[Event], None],
                 on_retry_scheduled: Callable[[float], None] | None = None) -> None:
        self._session = session
        self._worker_id = worker_id
        self._emit = emit
        self._on_retry = on_retry_scheduled
        self._pending: list[Outcome] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._failing = False
        self._follow_up: list[int] = []

    @property
    def pending_ids(self) -> list[int]:
        return [o.job.id for o in self._pending]

    def submit(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._idle.clear()
        self._wake.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until every pending outcome is written; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        while True:
            if not self._pending:
                self._idle.set()
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch = self._pending[:BATCH_MAX]
            try:
                applied = await self.write(batch)
            except Exception as exc:
                if not self._failing:
                    self._failing = True
                    self._emit(ConnectionLost(self._worker_id, "completer", str(exc).strip()))
                if self._closing and not is_connection_error(exc):
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if self._failing:
                self._failing = False
                self._emit(ConnectionRestored(self._worker_id, "completer"))
            backoff = 0.1
            del self._pending[: len(batch)]
            self._report(batch, applied)
            if self._follow_up:
                await self._settle()

    async def write(self, batch: list[Outcome]) -> set[int]:
        # In id order: the statement finds each row by primary key in array order,
        # so it locks rows in ascending ids, as pgqueue.link_dependencies does;
        # a producer naming two jobs of one batch cannot deadlock with it.
        batch = sorted(batch, key=lambda o: o.job.id)
        rows = await self._session.fetch("job_complete_many", {
            "ids": _array([o.job.id for o in batch]),
            "attempts": _array([o.job.attempt for o in batch]),
            "outcomes": _array([o.outcome for o in batch]),
            "delays": _array([o.delay_seconds for o in batch]),
            "errors": _array([None if o.error is None else _json(o.error) for o in batch]),
            "results": _array([o.result_json for o in batch]),
            "worker_id": self._worker_id,
        })
        self._follow_up.extend(row[0] for row in rows if row[1])
        return {row[0] for row in rows}

    async def _settle(self) -> None:
        ids, self._follow_up = self._follow_up, []
        try:
            await self._session.fetch("job_after_finish", {"ids": ids})
        except Exception as exc:  # the outcomes stand; the leader's sweep settles these
            if is_connection_error(exc):
                self._emit(ConnectionLost(self._worker_id, "completer", str(exc).strip()))
            else:
                self._emit(ServiceError(self._worker_id, "completer", repr(exc)))

    def _report(self, batch: list[Outcome], applied: set[int]) -> None:
        for o in batch:
            if o.job.id in applied:
                self._emit(JobFinished(self._worker_id, o.job, o.outcome, o.duration_seconds,
                                       o.error_message, o.delay_seconds))
                if o.outcome == "retried" and self._on_retry and o.delay_seconds is not None:
                    self._on_retry(o.delay_seconds)
            else:
                self._emit(JobLost(self._worker_id, o.job, o.outcome))


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _array(values: list[int | float | str | None]) -> str | None:
    """A PostgreSQL array literal of ``values``; None when every value is None.

    psycopg adapts a list element by element (1.3-1.8 µs each); joining the text
    here takes a tenth of that. An all-NULL column is sent as NULL: unnest pads
    a NULL (empty) array with NULLs to the length of the others.
    """
    if all(v is None for v in values):
        return None
    return "{" + ",".join(_element(v) for v in values) + "}"


def _element(value: int | float | str | None) -> str:
    if value is None:
        return "NULL"
    if type(value) is int or type(value) is float:
        return repr(value)
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
