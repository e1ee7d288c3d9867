"""Scheduler (leader only): enqueues each due periodic tick exactly once.

On taking the lead (each leader term) it records the registry's schedules
(periodic_sync.sql); then at every run it reads the last handled tick of each
and the database clock, and lets :meth:`pgqueue.periodic.Schedule.decide`
choose; pgqueue.periodic_fire enqueues and advances the schedule in one
statement, so a tick is handled once whichever worker leads.

A schedule whose statement fails (its job cannot be inserted, say) does not
hold back the others: every schedule is tried, then the first error is raised
for the service loop to log, count and back off on. Its tick stays unhandled
and is tried again at the next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...periodic import Schedule
from ..config import DEFAULT_HEARTBEAT_INTERVAL
from ..session import Session, is_connection_error
from .leader import Leader

__all__ = ["ScheduleResult", "Scheduler", "SchedulerConfig"]


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """- ``tolerance_seconds``: how late a tick may run under on_missed='skip'
      (covers a leader hand-over: the lease plus two ticks, 40 with the defaults).
    - ``max_wait_seconds``: the longest pause between runs, whatever the next
      tick (the worker's tick, 5).
    """

    tolerance_seconds: float = 40.0
    max_wait_seconds: float = DEFAULT_HEARTBEAT_INTERVAL


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    enqueued: tuple[int, ...]
    skipped: int  # due ticks recorded as handled without a job (too late to run)
    next_in_seconds: float | None  # until the soonest next tick; None: no schedule


class Scheduler:
    """Owns enqueueing the periodic ticks (leader only); runs on the claim
    session."""

    name = "scheduler"

    def __init__(self, session: Session, schedules: Sequence[Schedule], leader: Leader,
                 config: SchedulerConfig | None = None) -> None:
        self._session = session
        self._schedules = list(schedules)
        self._leader = leader
        self.config = config or SchedulerConfig()
        self._synced_term: int | None = None

    async def sync(self) -> None:
        """Record the registry's schedules in pgqueue.periodic."""
        for sched in self._schedules:
            await self._session.fetch("periodic_sync", {
                "name": sched.name, "cron": sched.cron, "task": sched.task,
                "queue": sched.queue, "args": sched.args_json,
                "on_missed": sched.on_missed, "next_tick": None})
        self._synced_term = self._leader.term

    async def run_once(self) -> ScheduleResult:
        """Handle every due tick once; raises the first schedule's error, if any."""
        if not self._schedules:
            return ScheduleResult((), 0, None)
        if self._synced_term != self._leader.term:
            await self.sync()
        state = {r[0]: (r[1], r[2]) for r in await self._session.fetch("periodic_state")}
        enqueued: list[int] = []
        skipped = 0
        soonest: float | None = None
        error: Exception | None = None
        for sched in self._schedules:
            last_tick, now = state.get(sched.name, (None, None))
            if now is None:
                continue
            decision = sched.decide(last_tick, now, self.config.tolerance_seconds)
            if decision is not None:
                tick, fire = decision
                try:
                    rows = await self._session.fetch("periodic_fire", {
                        "name": sched.name, "tick": tick, "next_tick": sched.next_tick(tick),
                        "fire": fire})
                except Exception as exc:
                    if is_connection_error(exc):
                        raise
                    error = error or exc
                    rows = []
                if rows and rows[0][0] is not None:
                    enqueued.append(rows[0][0])
                elif not fire:
                    skipped += 1
            wait = (sched.next_tick(now) - now).total_seconds()
            soonest = wait if soonest is None else min(soonest, wait)
        if error is not None:
            raise error
        return ScheduleResult(tuple(enqueued), skipped, soonest)

    async def tick(self) -> float:
        result = await self.run_once()
        pause = self.config.max_wait_seconds
        if result.next_in_seconds is not None:
            pause = min(pause, max(0.0, result.next_in_seconds) + 0.001)
        return pause
