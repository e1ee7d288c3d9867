"""Settler (leader only): the safety net of dependency and batch settling.

Workers settle dependents and batches right after writing outcomes; one that
died in between leaves blocked jobs whose dependencies are all gone, or sealed
batches with no live job. pgqueue.settle_pending (job_settle_pending.sql)
settles up to 1000 of each per run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..session import Session

__all__ = ["Settler", "SettlerConfig", "SettlerResult"]


@dataclass(frozen=True, slots=True)
class SettlerConfig:
    """- ``interval_seconds``: between runs (the worker's reaper_interval, 15)."""

    interval_seconds: float = 15.0


@dataclass(frozen=True, slots=True)
class SettlerResult:
    # pgqueue.settle_pending reports no counts (it returns void).
    statements: int


class Settler:
    """Owns the sweep that settles finished jobs' dependents and batches left
    unsettled (leader only); runs on the claim session."""

    name = "settler"

    def __init__(self, session: Session, config: SettlerConfig | None = None) -> None:
        self._session = session
        self.config = config or SettlerConfig()

    async def run_once(self) -> SettlerResult:
        await self._session.fetch("job_settle_pending")
        return SettlerResult(statements=1)

    async def tick(self) -> float:
        await self.run_once()
        return self.config.interval_seconds
