"""Pruner (leader only): deletes finished jobs once they are older than their retention.

A round works through every (queue, final state) whose retention is not off
(history_targets_list.sql: the queue's override, else the worker's
:class:`~pgqueue.retention.Retention`), oldest ``finished_at`` first. Each
:meth:`Pruner.tick` runs one bounded statement (history_prune.sql): at most
``limit`` rows scanned through an index range, deleted unless a blocked job
depends on them or their batch is still open; batches whose last job went go
too. While the round has work left the tick asks for ``pause_seconds``, so
claims on the shared session and autovacuum get their turn and no statement
is long; once it is done, ``interval_seconds`` until the next round. The loop
waits for leadership before every tick: a worker that loses the lead stops
within one statement.

Invariants:
- the work of a statement is bounded by ``limit`` whatever the size of history;
- per (queue, state) a cursor (the last ``finished_at``, ``id`` scanned) carries
  over from round to round, so rows deleted before (dead index entries until
  vacuum) or kept are not walked again; every ``rescan_seconds`` a round starts
  from the oldest row, to delete rows kept until then because a job depended
  on them or their batch was open;
- events: :class:`~pgqueue.events.JobsPruned` per statement that deleted
  (metrics count them); :class:`~pgqueue.events.PruneReport` with the totals
  since the last one (logs show it): at the end of the first round that deleted
  anything, then at the end of a round at most every ``report_seconds``, and
  every ``report_seconds`` within a round that lasts longer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ...events import Event, JobsPruned, PruneReport
from ...retention import DEFAULT_RETENTION, FINAL_STATES, Retention
from ..config import ConfigError
from ..session import Session

__all__ = ["DEFAULT_PRUNE_LIMIT", "PruneResult", "PruneStep", "Pruner", "PrunerConfig"]

DEFAULT_PRUNE_LIMIT = 1000

Target = tuple[str, str]  # (queue, state)
Cursor = tuple[datetime, int]  # (finished_at, id) of the last row scanned


@dataclass(frozen=True, slots=True)
class PrunerConfig:
    """- ``retention``: the worker's retention by final state (succeeded 1 day,
      cancelled 7 days, failed 30 days).
    - ``interval_seconds``: between rounds (60).
    - ``limit``: rows scanned per statement (1000).
    - ``pause_seconds``: between the statements of a round (0.05).
    - ``rescan_seconds``: a round starts from the oldest rows again at most this
      long after the last that did (3600).
    - ``report_seconds``: at most one PruneReport this often (300).
    """

    retention: Retention = DEFAULT_RETENTION
    interval_seconds: float = 60.0
    limit: int = DEFAULT_PRUNE_LIMIT
    pause_seconds: float = 0.05
    rescan_seconds: float = 3600.0
    report_seconds: float = 300.0

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) \
                or not 1 <= self.limit <= 100_000:
            raise ConfigError(f"limit must be 1 to 100000 rows, got {self.limit!r}")
        for name in ("interval_seconds", "pause_seconds", "rescan_seconds", "report_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class PruneStep:
    """One tick: the statement's target and counts (``target`` None when the
    round had nothing to do), and whether the round is over."""

    target: Target | None
    scanned: int
    deleted: int
    batches: int
    round_done: bool


@dataclass(slots=True)
class PruneResult:
    """A whole round (:meth:`Pruner.run_once`): deleted jobs by (queue, state)."""

    jobs: dict[Target, int] = field(default_factory=dict)
    batches: int = 0
    statements: int = 0

    @property
    def total(self) -> int:
        return sum(self.jobs.values())


class Pruner:
    """Owns deleting expired history (leader only); runs on the claim session."""

    name = "pruner"

    def __init__(self, session: Session, worker_id: str, emit: Callable[[Event], None],
                 config: PrunerConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session
        self._worker_id = worker_id
        self._emit = emit
        self.config = config or PrunerConfig()
        self._clock = clock
        self._targets: list[tuple[str, str, float]] | None = None  # this round's, to do
        self._cursors: dict[Target, Cursor] = {}
        self._rescanned_at: float | None = None
        self._reported_at: float | None = None
        self._pending: dict[str, int] = {}
        self._round_started = 0.0
        self._pending_batches = 0
        self._pending_statements = 0
        self._pending_rounds = 0
        self._busy = 0.0

    async def step(self) -> PruneStep:
        """Run one statement of the current round (starting one if none is on)."""
        if self._targets is None:
            await self._start_round()
        assert self._targets is not None
        if not self._targets:
            return self._end_round(PruneStep(None, 0, 0, 0, True))
        queue, state, keep = self._targets[0]
        cursor = self._cursors.get((queue, state))
        started = self._clock()
        rows = await self._session.fetch("history_prune", {
            "queue": queue, "state": state, "keep_seconds": keep,
            "after_at": cursor[0] if cursor else None, "after_id": cursor[1] if cursor else None,
            "limit": self.config.limit})
        took = self._clock() - started
        self._busy += took
        self._pending_statements += 1
        scanned, deleted, batches, last_at, last_id = rows[0]
        if scanned:
            self._cursors[(queue, state)] = (last_at, int(last_id))
        if scanned < self.config.limit:
            self._targets.pop(0)
        if deleted:
            self._pending[state] = self._pending.get(state, 0) + int(deleted)
            self._pending_batches += int(batches)
            self._emit(JobsPruned(self._worker_id, queue, state, int(deleted), int(batches),
                                  took))
        result = PruneStep((queue, state), int(scanned), int(deleted), int(batches),
                           not self._targets)
        return self._end_round(result) if result.round_done else self._maybe_report(result)

    async def run_once(self) -> PruneResult:
        """Run a whole round to its end without pausing; return what it deleted."""
        result = PruneResult()
        while True:
            step = await self.step()
            if step.target is not None:
                result.statements += 1
                if step.deleted:
                    result.jobs[step.target] = result.jobs.get(step.target, 0) + step.deleted
                result.batches += step.batches
            if step.round_done:
                return result

    async def tick(self) -> float:
        step = await self.step()
        return self.config.interval_seconds if step.round_done else self.config.pause_seconds

    async def _start_round(self) -> None:
        retention = self.config.retention
        rows = await self._session.fetch("history_targets_list", {
            f"{state}_seconds": retention.of(state) for state in FINAL_STATES})
        self._targets = [(str(q), str(s), float(k)) for q, s, k in rows]
        now = self._round_started = self._clock()
        if self._rescanned_at is None or now - self._rescanned_at >= self.config.rescan_seconds:
            self._cursors.clear()
            self._rescanned_at = now
        else:
            live = {(q, s) for q, s, _ in self._targets}
            self._cursors = {t: c for t, c in self._cursors.items() if t in live}

    def _end_round(self, step: PruneStep) -> PruneStep:
        self._targets = None
        self._pending_rounds += 1
        return self._maybe_report(step, round_end=True)

    def _maybe_report(self, step: PruneStep, *, round_end: bool = False) -> PruneStep:
        """Report what is pending: at the end of the first round that deleted, then
        at the end of a round ``report_seconds`` after the last report; within a
        round that has lasted that long already (a long catch-up), every
        ``report_seconds``."""
        if not self._pending:
            return step
        now = self._clock()
        last = self._reported_at
        if round_end:
            due = last is None or now - last >= self.config.report_seconds
        else:
            since = self._round_started if last is None else max(self._round_started, last)
            due = now - since >= self.config.report_seconds
        if due:
            self._emit(PruneReport(
                self._worker_id, tuple(sorted(self._pending.items())), self._pending_batches,
                self._pending_statements, round(self._busy, 3), self._pending_rounds))
            self._reported_at = now
            self._pending = {}
            self._pending_batches = self._pending_statements = self._pending_rounds = 0
            self._busy = 0.0
        return step
