"""Heartbeats, leadership and the reaper, on one connection of their own.

- heartbeat: every ``heartbeat_interval``, one statement refreshes this worker's
  row and the heartbeats of the jobs it holds.
- leader: a lease row (pgqueue.leader) renewed at every tick; whoever holds
  it runs the reaper. If the holder dies, freezes or is cut off, the lease
  expires and the next worker to try takes over.
- reaper (leader only): :meth:`Maintenance.reap_once` returns stalled running
  jobs to the queue (or fails them on their last attempt) and removes dead
  worker rows.
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
from .config import WorkerConfig
from .session import Session

__all__ = ["Maintenance"]


class Maintenance:
    def __init__(self, session: Session, worker_id: str, config: WorkerConfig,
                 queues: list[str], tasks: list[str], *, held_ids: Callable[[], list[int]],
                 emit: Callable[[Event], None]) -> None:
        self._session = session
        self._worker_id = worker_id
        self._config = config
        self._held_ids = held_ids
        self._emit = emit
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
        return int(rows[0][0])

    async def reap_once(self) -> tuple[list[int], list[int]]:
        """Reclaim stalled jobs once; return (requeued ids, failed ids)."""
        stall = {"stall_seconds": self._config.stall_timeout}
        rows = await self._session.fetch("job_reclaim_stalled", stall)
        await self._session.fetch("worker_remove_dead", stall)
        requeued = [r[0] for r in rows if r[4] == "queued"]
        failed = [r[0] for r in rows if r[4] == "failed"]
        if rows:
            jobs = tuple(ReclaimedJob(*row) for row in rows)
            self._emit(JobsReclaimed(self._worker_id, tuple(requeued), tuple(failed), jobs))
        return requeued, failed

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
                if await self.try_lead() and time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + self._config.reaper_interval
                    await self.reap_once()
                if failing:
                    failing = False
                    self._emit(ConnectionRestored(self._worker_id, "maintenance"))
                await asyncio.sleep(min(self._config.heartbeat_interval,
                                        self._config.reaper_interval))
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
