"""Heartbeats, leadership and the reaper, on one connection of their own.

- heartbeat: every ``heartbeat_interval``, one statement refreshes this worker's
  row and the heartbeats of the jobs it holds.
- leader: a lease row (pgqueue.leader) renewed at every tick; whoever holds
  it runs the reaper. If the holder dies, freezes or is cut off, the lease
  expires and the next worker to try takes over.
- reaper (leader only): :meth:`Maintenance.reap_once` returns stalled running
  jobs to the queue (or fails them on their last attempt), removes dead worker
  rows and ends expired queued jobs; then settles what depended on the jobs it
  ended, and sweeps up dependents and batches a crashed worker left unsettled.
- counts (leader only, after each reap): :meth:`Maintenance.compact_once` folds
  the failed-count deltas that queue_stats sums into one row per queue.
- scheduler (leader only): :meth:`Maintenance.schedule_once` enqueues each due
  periodic tick exactly once (pgqueue.periodic_fire).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

from ..events import (
    ConnectionLost,
    ConnectionRestored,
    Event,
    JobsReclaimed,
    LeaderChanged,
    ReclaimedJob,
)
from ..periodic import Schedule
from .config import WorkerConfig
from .session import Session

__all__ = ["Maintenance"]


class Maintenance:
    def __init__(self, session: Session, worker_id: str, config: WorkerConfig,
                 queues: list[str], tasks: list[str], *, held_ids: Callable[[], list[int]],
                 emit: Callable[[Event], None],
                 on_cancel: Callable[[list[int]], None] | None = None,
                 schedules: list[Schedule] | None = None) -> None:
        self._session = session
        self._worker_id = worker_id
        self._config = config
        self._held_ids = held_ids
        self._emit = emit
        self._on_cancel = on_cancel
        self._schedules = schedules or []
        self._synced_schedules = False
        self._next_tick: float | None = None
        self.is_leader = False
        self._identity = {
            "worker_id": worker_id, "host": socket.gethostname(), "pid": os.getpid(),
            "queues": queues, "tasks": tasks, "concurrency": config.concurrency,
        }

    async def register(self) -> None:
        await self._session.fetch("worker_register", self._identity)

    async def heartbeat_once(self) -> int:
        rows = await self._session.fetch("job_heartbeat", {**self._identity,
                                                           "ids": self._held_ids()})
        refreshed, _, cancel_ids = rows[0]
        if cancel_ids and self._on_cancel:
            self._on_cancel(list(cancel_ids))
        return int(refreshed)

    async def reap_once(self) -> tuple[list[int], list[int]]:
        """Reclaim stalled jobs once; return (requeued ids, failed ids)."""
        stall = {"stall_seconds": self._config.stall_timeout}
        rows = await self._session.fetch("job_reclaim_stalled", stall)
        await self._session.fetch("worker_remove_dead", stall)
        expired = await self._session.fetch("job_expire")
        requeued = [r[0] for r in rows if r[4] == "queued"]
        failed = [r[0] for r in rows if r[4] == "failed"]
        finished = failed + [r[0] for r in expired]
        if finished:
            await self._session.fetch("job_after_finish", {"ids": finished})
        await self._session.fetch("job_settle_pending")
        if rows:
            jobs = tuple(ReclaimedJob(*row) for row in rows)
            self._emit(JobsReclaimed(self._worker_id, tuple(requeued), tuple(failed), jobs))
        return requeued, failed

    async def compact_once(self) -> int:
        """Fold the failed-count deltas (pgqueue.failed_counts); return how many rows."""
        rows = await self._session.fetch("failed_counts_compact")
        return int(rows[0][0])

    async def schedule_once(self) -> list[int]:
        """Handle every due periodic tick once; return the ids of jobs enqueued."""
        if not self._schedules:
            return []
        if not self._synced_schedules:
            for sched in self._schedules:
                await self._session.fetch("periodic_sync", {
                    "name": sched.name, "cron": sched.cron, "task": sched.task,
                    "queue": sched.queue, "args": sched.args_json,
                    "on_missed": sched.on_missed, "next_tick": None})
            self._synced_schedules = True
        state = {r[0]: (r[1], r[2]) for r in await self._session.fetch("periodic_state")}
        enqueued: list[int] = []
        soonest: float | None = None
        for sched in self._schedules:
            last_tick, now = state.get(sched.name, (None, None))
            if now is None:
                continue
            decision = sched.decide(last_tick, now, self.tolerance_seconds)
            if decision is not None:
                tick, fire = decision
                rows = await self._session.fetch("periodic_fire", {
                    "name": sched.name, "tick": tick, "next_tick": sched.next_tick(tick),
                    "fire": fire})
                if rows and rows[0][0] is not None:
                    enqueued.append(rows[0][0])
            wait = (sched.next_tick(now) - now).total_seconds()
            soonest = wait if soonest is None else min(soonest, wait)
        self._next_tick = None if soonest is None else time.monotonic() + max(0.0, soonest)
        return enqueued

    @property
    def tolerance_seconds(self) -> float:
        """How late a tick may run under on_missed='skip': covers a leader hand-over."""
        return self.lease_seconds + 2 * self._config.heartbeat_interval

    @property
    def lease_seconds(self) -> float:
        """How long a lease lasts unrenewed: two ticks, at most half the stall timeout."""
        tick = min(self._config.heartbeat_interval, self._config.reaper_interval)
        return max(2 * tick, self._config.stall_timeout / 2)

    async def try_lead(self) -> bool:
        """Take or renew the lease; return whether this worker leads now."""
        rows = await self._session.fetch("leader_try_acquire", {
            "worker_id": self._worker_id, "ttl_seconds": self.lease_seconds})
        self._set_leader(bool(rows))
        return self.is_leader

    async def resign(self) -> None:
        if self.is_leader:
            await self._session.fetch("leader_resign", {"worker_id": self._worker_id})
            self._set_leader(False)

    def _set_leader(self, value: bool) -> None:
        if value != self.is_leader:
            self.is_leader = value
            self._emit(LeaderChanged(self._worker_id, value))

    async def run(self) -> None:
        next_reap = 0.0
        failing = False
        while True:
            try:
                await self.heartbeat_once()
                if await self.try_lead():
                    if time.monotonic() >= next_reap:
                        next_reap = time.monotonic() + self._config.reaper_interval
                        await self.reap_once()
                        await self.compact_once()
                    await self.schedule_once()
                else:
                    self._synced_schedules = False
                    self._next_tick = None
                if failing:
                    failing = False
                    self._emit(ConnectionRestored(self._worker_id, "maintenance"))
                pause = min(self._config.heartbeat_interval, self._config.reaper_interval)
                if self._next_tick is not None:
                    pause = min(pause, max(0.0, self._next_tick - time.monotonic()) + 0.001)
                await asyncio.sleep(pause)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._set_leader(False)
                await self._session.close()
                if not failing:
                    failing = True
                    self._emit(ConnectionLost(self._worker_id, "maintenance",
                                              str(exc).strip() or type(exc).__name__))
                await asyncio.sleep(min(1.0, self._config.heartbeat_interval))
