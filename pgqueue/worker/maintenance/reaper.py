"""Reaper (leader only): takes back running jobs whose heartbeat stalled.

A stalled job goes back to ``queued`` if attempts remain, else to ``failed``
in history (job_reclaim_stalled.sql); the failed ones' dependents and batches
are settled at once. Each statement takes at most ``limit`` jobs, longest
stalled first, so recovering from a long outage is many short statements that
claims on the same session slip between; :meth:`Reaper.run_once` repeats until
a statement takes fewer than the limit. Then it removes dead worker rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ...events import Event, JobsReclaimed, ReclaimedJob
from ..config import DEFAULT_STALL_TIMEOUT
from ..session import Session

__all__ = ["DEFAULT_REAPER_LIMIT", "ReapResult", "Reaper", "ReaperConfig"]

DEFAULT_REAPER_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class ReaperConfig:
    """- ``stall_timeout_seconds``: a running job whose heartbeat is older is
      reclaimed (the worker's stall_timeout, 60).
    - ``interval_seconds``: between runs (the worker's reaper_interval: a quarter
      of the stall timeout, 0.5 to 30; 15 with the defaults).
    - ``limit``: jobs per statement (1000).
    """

    stall_timeout_seconds: float = DEFAULT_STALL_TIMEOUT
    interval_seconds: float = 15.0
    limit: int = DEFAULT_REAPER_LIMIT


@dataclass(frozen=True, slots=True)
class ReapResult:
    requeued: tuple[int, ...]
    failed: tuple[int, ...]
    dead_workers: int
    statements: int  # job_reclaim_stalled statements run


class Reaper:
    """Owns reclaiming stalled jobs and removing dead worker rows (leader only);
    runs on the claim session."""

    name = "reaper"

    def __init__(self, session: Session, worker_id: str, emit: Callable[[Event], None],
                 config: ReaperConfig | None = None) -> None:
        self._session = session
        self._worker_id = worker_id
        self._emit = emit
        self.config = config or ReaperConfig()

    async def reclaim_batch(self) -> list[ReclaimedJob]:
        """One bounded statement: reclaim at most ``limit`` stalled jobs."""
        rows = await self._session.fetch("job_reclaim_stalled", {
            "stall_seconds": self.config.stall_timeout_seconds, "limit": self.config.limit})
        jobs = [ReclaimedJob(*row) for row in rows]
        failed = [j.id for j in jobs if j.outcome == "failed"]
        if failed:
            await self._session.fetch("job_after_finish", {"ids": failed})
        if jobs:
            self._emit(JobsReclaimed(
                self._worker_id, tuple(j.id for j in jobs if j.outcome == "queued"),
                tuple(failed), tuple(jobs)))
        return jobs

    async def run_once(self) -> ReapResult:
        """Reclaim every stalled job, a batch per statement; remove dead workers."""
        requeued: list[int] = []
        failed: list[int] = []
        statements = 0
        while True:
            jobs = await self.reclaim_batch()
            statements += 1
            requeued.extend(j.id for j in jobs if j.outcome == "queued")
            failed.extend(j.id for j in jobs if j.outcome == "failed")
            if len(jobs) < self.config.limit:
                break
            await asyncio.sleep(0)  # let a claim waiting for the session go first
        dead = await self._session.fetch("worker_remove_dead", {
            "stall_seconds": self.config.stall_timeout_seconds})
        return ReapResult(tuple(requeued), tuple(failed), len(dead), statements)

    async def tick(self) -> float:
        await self.run_once()
        return self.config.interval_seconds
