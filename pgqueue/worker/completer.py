"""Write attempt outcomes in batches: one statement for many jobs.

Invariant: every write is fenced on (job id, claim token, worker id, state
running) in SQL; an outcome the database did not apply is reported as lost,
never retried as another write. Outcomes stay pending (and heartbeated) until
written; a write that failed on its connection (or for a reason that is not
the data's) is retried after a pause.

An outcome the database refuses never holds back the others. Text and results
it cannot store as they are (NUL, lone surrogates: storable.py) are rewritten
before they are sent, with a note kept in the job's errors. A batch that still
fails with a data error (session.is_data_error) is split in halves until the
refused outcome is alone; that one is written as ``failed`` with the
database's reason, and the others as they were. Both emit OutcomeRewritten.

Jobs that finish with dependents or in a batch are settled (job_after_finish)
after their outcome commits, in a statement of its own: it must see every
transaction that committed before, such as a dependent enqueued while the job
was finishing. If that second step fails, the leader's sweep settles them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ..events import (
    ConnectionLost,
    ConnectionRestored,
    Event,
    JobFinished,
    JobLost,
    OutcomeRewritten,
    ServiceError,
)
from .executor import Outcome
from .session import Session, is_connection_error, is_data_error
from .storable import storable_error, storable_result_json, storable_text

__all__ = ["Completer", "outcome_params", "sql_array"]

BATCH_MAX = 1000
_REASON_MAX = 1000


class Completer:
    """Owns the outcomes not yet written: batches them into fenced writes on the
    complete session (its own connection), and settles what they finish."""

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
        self._failing: str | None = None  # why writes fail: "connection" or "error"
        self._follow_up: list[int] = []

    def held(self) -> list[tuple[int, int | None]]:
        """(job id, claim token) of every attempt whose outcome is not written yet."""
        return [(o.job.id, o.job.claim_token) for o in self._pending]

    def submit(self, outcome: Outcome) -> None:
        if outcome.written is not None:  # settled in the handler's own transaction
            self._settled(outcome)
            return
        self._pending.append(outcome)
        self._idle.clear()
        self._wake.set()

    def _settled(self, o: Outcome) -> None:
        """Report an outcome the attempt's transaction settled; write nothing."""
        if o.written == "committed":
            self._report([o], {o.job.id: (None, None)})
            if o.follow_up:
                self._follow_up.append(o.job.id)
                self._idle.clear()
                self._wake.set()
        else:  # rolled back (stale), or its commit's answer lost
            self._emit(JobLost(self._worker_id, o.job, o.outcome, effects=o.written))

    async def drain(self, timeout: float) -> bool:
        """Wait until every pending outcome is written; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def flush(self, batch: list[Outcome]) -> None:
        """Write ``batch`` now, outside the run loop, as :meth:`run` writes a batch
        (refused outcomes isolated, finished jobs settled); raises what a write
        raises, with nothing retried."""
        await self._write_isolating(batch, [])
        if self._follow_up:
            await self._settle()

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        while True:
            if not self._pending:
                if self._follow_up:  # committed by handlers' own transactions
                    await self._settle()
                self._idle.set()
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch = self._pending[:BATCH_MAX]
            done: list[Outcome] = []
            try:
                await self._write_isolating(batch, done)
            except Exception as exc:
                if done:  # written before the failure: reported already
                    written = {id(o) for o in done}
                    self._pending = [o for o in self._pending if id(o) not in written]
                connection = is_connection_error(exc)
                if self._failing is None:
                    self._failing = "connection" if connection else "error"
                    if connection:
                        self._emit(ConnectionLost(self._worker_id, "completer",
                                                  str(exc).strip()))
                    else:
                        self._emit(ServiceError(self._worker_id, "completer", repr(exc)))
                if self._closing and not connection:
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if self._failing is not None:
                if self._failing == "connection":
                    self._emit(ConnectionRestored(self._worker_id, "completer"))
                self._failing = None
            backoff = 0.1
            del self._pending[: len(batch)]
            if self._follow_up:
                await self._settle()

    async def _write_isolating(self, batch: list[Outcome], done: list[Outcome]) -> None:
        """Write ``batch``, splitting it while the database refuses its data;
        append each outcome written (or given up on) to ``done``."""
        chunks = [batch]
        while chunks:
            chunk = chunks.pop()
            try:
                applied = await self.write(chunk)
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                if len(chunk) > 1:
                    half = len(chunk) // 2
                    chunks.append(chunk[half:])
                    chunks.append(chunk[:half])  # the first half next
                    continue
                await self._write_refused(chunk[0], exc)
            else:
                self._report(chunk, applied)
            done.extend(chunk)

    async def _write_refused(self, refused: Outcome, exc: BaseException) -> None:
        """Record as ``failed`` an outcome the database refused, with its reason."""
        job = refused.job
        reason = _reason(exc)
        error: dict[str, Any] = {
            "kind": "unstorable", "attempt": job.attempt,
            "message": f"the outcome of this attempt ({refused.outcome}) could not be "
                       f"stored: {reason}"}
        original = refused.error_message
        if original is not None:
            error["original_message"] = original[:_REASON_MAX]
        minimal = {"kind": "unstorable", "attempt": job.attempt,
                   "message": "the outcome of this attempt could not be stored"}
        for candidate in (error, minimal):
            failed = Outcome(job, "failed", refused.duration_seconds, error=candidate)
            try:
                applied = await self.write([failed])
            except Exception as again:
                if not is_data_error(again):
                    raise
                continue
            if job.id in applied:
                self._emit(OutcomeRewritten(self._worker_id, job, refused.outcome, "failed",
                                            reason, isolated=True))
            self._report([failed], applied)
            return
        # Not even the fixed text was accepted (a constraint or trigger refuses the
        # row itself): give up on it. The job is no longer heartbeated, so the
        # reaper returns it after the stall timeout.
        self._emit(ServiceError(self._worker_id, "completer",
                                f"the database refused the outcome of job {job.id} in "
                                f"every form; left to the reaper: {reason}"))

    async def write(self, batch: list[Outcome]) -> dict[int, tuple[str | None, str | None]]:
        """Write ``batch`` in one statement; return the ids applied, each with the
        outcome and reason the database wrote instead of the one given (a snooze
        past its cap is failed there), or (None, None)."""
        # In id order: the statement finds each row by primary key in array order,
        # so it locks rows in ascending ids, as pgqueue.link_dependencies does;
        # a producer naming two jobs of one batch cannot deadlock with it.
        batch = sorted(batch, key=lambda o: o.job.id)
        rows = await self._session.fetch("job_complete_many",
                                         outcome_params(batch, self._worker_id))
        self._follow_up.extend(row[0] for row in rows if row[1])
        return {row[0]: (row[2], row[3]) for row in rows}

    async def _settle(self) -> None:
        ids, self._follow_up = self._follow_up, []
        try:
            await self._session.fetch("job_after_finish", {"ids": ids})
        except Exception as exc:  # the outcomes stand; the leader's sweep settles these
            if is_connection_error(exc):
                self._emit(ConnectionLost(self._worker_id, "completer", str(exc).strip()))
            else:
                self._emit(ServiceError(self._worker_id, "completer", repr(exc)))

    def _report(self, batch: list[Outcome],
                applied: dict[int, tuple[str | None, str | None]]) -> None:
        for o in batch:
            written = applied.get(o.job.id)
            if written is None:
                self._emit(JobLost(self._worker_id, o.job, o.outcome))
                continue
            if o.note is not None:
                self._emit(OutcomeRewritten(self._worker_id, o.job, o.outcome, o.outcome,
                                            o.note))
            outcome, error = written
            if outcome is None:  # as given
                outcome, error = o.outcome, o.error_message
            delay = o.delay_seconds if outcome in ("retried", "snoozed") else None
            self._emit(JobFinished(self._worker_id, o.job, outcome, o.duration_seconds,
                                   error, delay))
            if delay is not None and self._on_retry:
                self._on_retry(delay)


def outcome_params(batch: list[Outcome], worker_id: str) -> dict[str, Any]:
    """The parameters of ``job_complete_many`` for ``batch``, with what PostgreSQL
    cannot store rewritten first (noted in each outcome)."""
    for o in batch:
        if o.error is not None or o.result_json is not None:
            _make_storable(o)
    return {
        "ids": sql_array([o.job.id for o in batch]),
        "tokens": sql_array([o.job.claim_token for o in batch]),
        "outcomes": sql_array([o.outcome for o in batch]),
        "delays": sql_array([o.delay_seconds for o in batch]),
        "errors": sql_array([_error_json(o) for o in batch]),
        "results": sql_array([o.result_json for o in batch]),
        "max_snoozes": sql_array([o.max_snoozes for o in batch]),
        "progress": sql_array([o.progress_json for o in batch]),
        "meta": sql_array([o.meta_json for o in batch]),
        "worker_id": worker_id,
    }


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _make_storable(o: Outcome) -> None:
    """Rewrite in place what of ``o`` PostgreSQL cannot store, noting it in
    ``o.note`` (idempotent: a second pass finds nothing to rewrite)."""
    notes = [] if o.note is None else [o.note]
    if o.error is not None:
        o.error, note = storable_error(o.error)
        if note is not None:
            notes.append(note)
    if o.result_json is not None:
        o.result_json, note = storable_result_json(o.result_json)
        if note is not None:
            notes.append(note)
    if notes:
        o.note = storable_text("; ".join(notes))[0]


def _error_json(o: Outcome) -> str | None:
    """The error entry to store: the attempt's error, with the note if any; for a
    success with a note, an entry of kind ``rewritten`` holding the note."""
    if o.note is None:
        return None if o.error is None else _json(o.error)
    if o.error is None:
        return _json({"kind": "rewritten", "attempt": o.job.attempt, "message": o.note})
    return _json({**o.error, "note": o.note})


def _reason(exc: BaseException) -> str:
    """The database's reason for refusing a statement, readable and storable."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    detail = getattr(diag, "message_detail", None)
    if primary:
        text = f"{primary} ({detail})" if detail else primary
    else:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else repr(exc)
    return storable_text(text[:_REASON_MAX])[0]


def sql_array(values: list[int | float | str | None]) -> str | None:
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
