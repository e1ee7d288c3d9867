"""Claim jobs when there is room and a reason to look, on the worker's claim session.

Owns the claim loop: when to look (a wake-up, the poll tick, the next known
``run_at``), how much to claim (prefetch and local slots), and sleeping until
the next due job rather than polling fast. The claimed jobs go to
:class:`~.slots.Slots`, which runs them. It uses the claim session (shared with
the maintenance services), and emits events; it logs nothing itself.

Invariants:
- claims take at most the room the worker has, in one statement (job_claim.sql).
  While recent jobs are short (average under 50 ms, ``_PREFETCH``) claims
  are pipelined: the worker holds up to ``2 × concurrency`` claimed jobs
  (``4 ×`` while they average under 5 ms), running plus a FIFO waiting for a
  slot, and claims again once a quarter of that is free, so the claim round
  trip overlaps running jobs and claims stay large. With longer
  jobs it holds no more than its free slots, so it never hoards jobs that an
  idle worker elsewhere could start;
- a claim in flight when the stop comes is finished, never cancelled: its
  jobs are started (or handed back) like any other;
- how a claim shares out among the queues (priority, weighted or strict) and
  among the keys of a fair queue is decided in the claim statement, from the
  turns :class:`~.turns.QueueTurns` and the cursors :class:`~.key_rounds.KeyRounds`
  keep; each claim's jobs advance them before the next claim.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..events import ConnectionLost, ConnectionRestored, Event, ServiceError
from ..tasks import Registry
from ..types import Job
from .executor import Outcome
from .key_rounds import KeyRounds
from .session import Session, is_connection_error
from .slots import Slots
from .turns import QueueTurns

__all__ = ["ClaimFilter", "Fetcher", "claim_params"]

_RECHECK_SECONDS = 0.02
# Claimed jobs a worker may hold, as a multiple of its concurrency, by the
# recent average job duration (a moving average): (shorter than, factor), first
# match wins; longer jobs: factor 1, no prefetch.
_PREFETCH = ((0.005, 4), (0.05, 2))
_AVERAGE_WEIGHT = 0.1
_BACKOFF_INITIAL_SECONDS = 0.1
_BACKOFF_MAX_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ClaimFilter:
    """What a worker claims: its queues, the tasks it knows, and per-key caps
    (``key_tasks[i]`` runs at most ``key_caps[i]`` jobs of one key at once)."""

    queues: list[str]
    tasks: list[str]
    key_tasks: list[str]
    key_caps: list[int | None]

    @classmethod
    def of(cls, registry: Registry, queues: list[str], tasks: list[str] | None = None
           ) -> ClaimFilter:
        """What to claim from ``queues``: the tasks of ``registry`` (only those of
        ``tasks`` when given), with their per-key caps."""
        known = [t for t in registry if tasks is None or t.name in tasks]
        capped = [t for t in known if t.concurrency_per_key is not None]
        return cls(queues, sorted(t.name for t in known), [t.name for t in capped],
                   [t.concurrency_per_key for t in capped])


def claim_params(claims: ClaimFilter, rooms: list[int], limit: int, worker_id: str, *,
                 async_commit: bool, turns: QueueTurns | None = None,
                 rounds: KeyRounds | None = None) -> dict[str, object]:
    """The parameters of job_claim: up to ``limit`` jobs, ``rooms[i]`` at most
    from ``claims.queues[i]``, in the order of ``turns`` (None: priority), the
    fair queues of ``rounds`` round-robin across keys (None: no fair queue)."""
    bases, strides = (None, None) if turns is None else turns.turns(limit)
    fair, cursors = (None, None) if rounds is None else rounds.params()
    return {
        "queues": claims.queues, "slots": rooms, "bases": bases, "strides": strides,
        "fair": fair, "cursors": cursors,
        "tasks": claims.tasks, "limit": limit,
        "worker_id": worker_id, "key_tasks": claims.key_tasks, "key_caps": claims.key_caps,
        "async_commit": async_commit,
    }


class Fetcher:
    """The claim loop. ``run()`` until the stop event; ``tick()`` looks once.

    A test drives ``tick()`` with a fake ``clock`` (monotonic seconds) and reads
    the pause it returns.
    """

    name = "fetcher"

    def __init__(self, session: Session, worker_id: str, claims: ClaimFilter, slots: Slots, *,
                 poll_interval: float, emit: Callable[[Event], None], stop: asyncio.Event,
                 clock: Callable[[], float] = time.monotonic,
                 turns: QueueTurns | None = None, rounds: KeyRounds | None = None) -> None:
        self._session = session
        self._worker_id = worker_id
        self._claims = claims
        self.queues = claims.queues
        self._turns = turns
        self._rounds = rounds
        self._slots = slots
        self._poll_interval = poll_interval
        self._emit = emit
        self._stop = stop
        self._clock = clock
        self._wake = asyncio.Event()
        self._look = True
        self._more = False
        self._poll_deadline = clock()
        self._next_due: float | None = None
        self._recheck = _RECHECK_SECONDS
        self._average_seconds: float | None = None
        self._failing = False
        self._backoff = _BACKOFF_INITIAL_SECONDS

    # --- what others tell the fetcher ------------------------------------------------

    def poke(self) -> None:
        """Look again soon: a notification, a gap in listening, a resumed queue."""
        self._look = True
        self._wake.set()

    def wake(self) -> None:
        """Interrupt the current sleep (the stop, a new next-due time)."""
        self._wake.set()

    def retry_scheduled(self, delay_seconds: float) -> None:
        """A job becomes due in ``delay_seconds``: look no later than that."""
        due = self._clock() + max(0.0, delay_seconds)
        if self._next_due is None or due < self._next_due:
            self._next_due = due
            self._wake.set()

    def job_finished(self, job: Job, outcome: Outcome | None) -> None:
        """An attempt ended (slots refilled already): look again if it freed room."""
        if job.queue in self._slots.queue_slots:
            self._look = True  # its queue has a free slot again
        if outcome is not None:
            self._record_duration(outcome.duration_seconds)
        if self._more:
            self._look = True
        self._wake.set()

    # --- the loop --------------------------------------------------------------------

    async def run(self) -> None:
        """Claim until the stop event is set, then return (a claim in flight ends first)."""
        while not self._stop.is_set():
            pause = await self.tick()
            if pause is not None:
                await self._sleep(pause)

    async def tick(self) -> float | None:
        """Claim once if there is room and a reason; return the seconds to sleep
        (until the poll tick or the next due job), or None to look again at once."""
        now = self._clock()
        if now >= self._poll_deadline:
            self._look = True
            self._poll_deadline = now + self._poll_interval
        if self._next_due is not None and now >= self._next_due:
            self._look = True
            self._next_due = None
        slots = self._slots
        room = self._capacity() - len(slots.running) - len(slots.ready)
        if self._look and room >= self._claim_min():
            self._look = False
            try:
                jobs = await self._claim(room)
                self._more = len(jobs) == room
                if jobs:
                    self._recheck = _RECHECK_SECONDS
                    # Start them before anything else: the next-due look-up
                    # below is one more round trip.
                    slots.add(jobs, claimed_now=True)
                if not self._more:
                    if jobs:
                        # Let the jobs just started run their first step
                        # before this loop builds and sends the look-up.
                        await asyncio.sleep(0)
                    await self._schedule_next_due()
            except Exception as exc:
                return self._failed(exc)
            if self._failing:
                self._failing = False
                self._emit(ConnectionRestored(self._worker_id, self.name))
            self._backoff = _BACKOFF_INITIAL_SECONDS
            if jobs:
                return None
        timeout = self._poll_deadline - self._clock()
        if self._next_due is not None:
            timeout = min(timeout, self._next_due - self._clock())
        return max(0.0, timeout)

    def _failed(self, exc: Exception) -> float:
        """Report a failed claim; return the back-off pause."""
        if not is_connection_error(exc):
            self._emit(ServiceError(self._worker_id, self.name, repr(exc)))
        elif not self._failing:
            self._emit(ConnectionLost(self._worker_id, self.name, str(exc).strip()))
        self._failing = True
        self._look = True
        pause = self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX_SECONDS)
        return pause

    async def _sleep(self, timeout: float) -> None:
        if not self._wake.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
        self._wake.clear()

    # --- how much to claim -------------------------------------------------------------

    def _prefetch_factor(self) -> int:
        average = self._average_seconds
        if average is not None:
            for shorter_than, factor in _PREFETCH:
                if average < shorter_than:
                    return factor
        return 1

    def _capacity(self) -> int:
        """How many claimed jobs this worker may hold now."""
        return self._prefetch_factor() * self._slots.concurrency

    def _claim_min(self) -> int:
        """Room needed before claiming: a quarter of what it may hold while
        prefetching (so claims stay large), else one slot."""
        factor = self._prefetch_factor()
        if factor == 1 or self._slots.idle:
            return 1
        return max(1, factor * self._slots.concurrency // 4)

    def _record_duration(self, seconds: float) -> None:
        average = self._average_seconds
        self._average_seconds = seconds if average is None else \
            average + _AVERAGE_WEIGHT * (seconds - average)

    def _rooms(self, limit: int) -> list[int]:
        """Room per queue: its free local slots (prefetch included), else ``limit``."""
        caps = self._slots.queue_slots
        if not caps:
            return [limit] * len(self.queues)
        factor = self._prefetch_factor()
        held = self._slots.held_by_queue()
        return [max(0, min(limit, caps[q] * factor - held[q])) if q in caps else limit
                for q in self.queues]

    # --- statements ----------------------------------------------------------------------

    async def _claim(self, limit: int) -> list[Job]:
        # Idle: the claim's commit need not wait for the WAL flush (it is the
        # wake-up latency). Busy: claims overlap running jobs anyway, and a
        # synchronous commit lets hint bits be set at once.
        rows = await self._session.fetch("job_claim", claim_params(
            self._claims, self._rooms(limit), limit, self._worker_id,
            async_commit=self._slots.idle, turns=self._turns, rounds=self._rounds))
        jobs = [Job(*row) for row in rows]
        if self._turns is not None:
            self._turns.record_jobs([job.queue for job in jobs])
        if self._rounds is not None:
            self._rounds.record(jobs)
        return jobs

    async def _schedule_next_due(self) -> None:
        queues = [q for q, room in zip(self.queues, self._rooms(1), strict=True) if room]
        if not queues:
            return  # every queue at its local slots: a finishing job wakes the fetcher
        rows = await self._session.fetch("job_next_run_at", {"queues": queues,
                                                             "tasks": self._claims.tasks})
        seconds = rows[0][0] if rows else None
        if seconds is None:
            return
        if seconds <= 0:
            # Due now yet not claimed: another claim held it for a moment, or a
            # per-key cap holds it back. Look again soon, then less and less
            # often; a finishing job of a capped key wakes workers by NOTIFY.
            seconds = self._recheck
            self._recheck = min(self._recheck * 2, self._poll_interval)
        self.retry_scheduled(max(seconds, _RECHECK_SECONDS))
