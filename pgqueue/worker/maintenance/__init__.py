"""A worker's maintenance services, each in its own loop on the worker's session.

- heartbeat (:mod:`.heartbeat`): refreshes this worker's row and its jobs.
- leader (:mod:`.leader`): a lease that one worker at a time holds; whoever
  holds it runs the services below.
- reaper (:mod:`.reaper`), expiry (:mod:`.expiry`), settler (:mod:`.settler`),
  compactor (:mod:`.compactor`), roll-up (:mod:`.rollup`), every reaper
  interval; sampler (:mod:`.sampler`) every few seconds; scheduler
  (:mod:`.scheduler`) at each periodic tick; pruner (:mod:`.pruner`), a round
  a minute of short statements spaced apart.

Each service has a config with its defaults and a ``run_once()`` that returns
what it did. :func:`.loop.run_service` runs each one as its own asyncio task:
an error in one service (a bug, a statement the database refuses) is logged
with its traceback once per streak, counted, and backed off on, while the
others, the heartbeat, the claims and leadership go on.

They share the claim session (a worker costs three connections: listener,
claim, completer), except the roll-up and the sampler: their statements read
much more (a sample counts every live job: 1.3-6 s with 1,000,000), so
they run on a session of their own, which connects only once its worker
leads: the leader holds a fourth connection, and its claims never wait for
them. That is safe because the session is autocommit: a refused
statement rolled back alone and the connection stays usable; only a lost
connection closes it. Statements are short (the reaper, expiry and pruner are
bounded per statement) and the session serialises them, so a claim waits for
at most one maintenance statement.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from ...events import Event
from ...periodic import Schedule
from ..cancellation import cancel_and_wait
from ..config import WorkerConfig
from ..session import Session
from .compactor import Compactor, CompactorConfig
from .expiry import Expiry, ExpiryConfig
from .heartbeat import Heartbeat, HeartbeatConfig, HeldAttempts
from .leader import Leader, LeaderConfig
from .loop import DEFAULT_BACKOFF_MAX_SECONDS, LoopConfig, Service, run_service
from .pruner import Pruner, PrunerConfig
from .reaper import Reaper, ReaperConfig
from .rollup import Rollup, RollupConfig
from .sampler import DEFAULT_SAMPLE_INTERVAL_SECONDS, Sampler, SamplerConfig
from .scheduler import Scheduler, SchedulerConfig
from .settler import Settler, SettlerConfig

__all__ = ["Maintenance"]


class Maintenance:
    """Builds the services from a worker's settings and runs them (``run()``)."""

    def __init__(self, session: Session, worker_id: str, config: WorkerConfig,
                 queues: list[str], tasks: list[str], *, held_ids: HeldAttempts,
                 emit: Callable[[Event], None],
                 on_cancel: Callable[[list[int]], None] | None = None,
                 schedules: list[Schedule] | None = None) -> None:
        self._worker_id = worker_id
        self._emit = emit
        tick = min(config.heartbeat_interval, config.reaper_interval)
        lease = max(2 * tick, config.stall_timeout / 2)
        identity = {
            "worker_id": worker_id, "host": socket.gethostname(), "pid": os.getpid(),
            "queues": queues, "tasks": tasks, "concurrency": config.concurrency,
        }
        every = config.reaper_interval
        self.heartbeat = Heartbeat(session, identity, held_ids=held_ids, on_cancel=on_cancel,
                                   config=HeartbeatConfig(config.heartbeat_interval))
        self.leader = Leader(session, worker_id, emit, LeaderConfig(tick, lease))
        self.reaper = Reaper(session, worker_id, emit,
                             ReaperConfig(config.stall_timeout, every))
        self.expiry = Expiry(session, ExpiryConfig(every))
        self.settler = Settler(session, SettlerConfig(every))
        self.compactor = Compactor(session, CompactorConfig(every))
        self.pruner = Pruner(session, worker_id, emit, PrunerConfig(retention=config.retention))
        self.summaries = Session(session.dsn, name="summaries", pooled=session.pooled)
        self.rollup = Rollup(self.summaries, RollupConfig(every))
        self.sampler = Sampler(self.summaries,
                               SamplerConfig(min(every, DEFAULT_SAMPLE_INTERVAL_SECONDS)))
        self.scheduler = Scheduler(session, schedules or [], self.leader, SchedulerConfig(
            tolerance_seconds=lease + 2 * config.heartbeat_interval, max_wait_seconds=tick))
        self._has_schedules = bool(schedules)
        # The heartbeat and the lease retry at least every tick: backing off
        # longer would let the reaper take this worker's jobs, or its lease.
        first = min(1.0, tick)
        self._steady = LoopConfig(first, max(first, tick))
        self._backoff = LoopConfig(first, max(first, DEFAULT_BACKOFF_MAX_SECONDS))

    @property
    def is_leader(self) -> bool:
        return self.leader.is_leader

    async def register(self) -> None:
        await self.heartbeat.register()

    async def resign(self) -> None:
        await self.leader.resign()

    async def close(self) -> None:
        """Close the session of the roll-up and the sampler (if it ever connected)."""
        await self.summaries.close()

    async def run(self) -> None:
        """Run every service until cancelled."""
        loops = [self._loop(self.heartbeat, self._steady),
                 self._loop(self.leader, self._steady)]
        led: list[Service] = [self.reaper, self.expiry, self.settler, self.compactor,
                              self.pruner, self.rollup, self.sampler]
        if self._has_schedules:
            led.append(self.scheduler)
        loops += [self._loop(service, self._backoff, leader_only=True) for service in led]
        tasks = [asyncio.create_task(loop, name=f"pgqueue-{name}") for name, loop in loops]
        try:
            await asyncio.gather(*tasks)
        finally:
            await cancel_and_wait(tasks)

    def _loop(self, service: Service, config: LoopConfig, *, leader_only: bool = False
              ) -> tuple[str, Coroutine[Any, Any, None]]:
        gate = self.leader.wait_elected if leader_only else None
        return service.name, run_service(service, worker_id=self._worker_id, emit=self._emit,
                                         config=config, gate=gate)
