"""Compactor (leader only): folds the failed-count deltas that queue_stats sums
(pgqueue.failed_counts) into one row per queue (failed_counts_compact.sql)."""

from __future__ import annotations

from dataclasses import dataclass

from ..session import Session

__all__ = ["Compactor", "CompactorConfig"]


@dataclass(frozen=True, slots=True)
class CompactorConfig:
    """- ``interval_seconds``: between runs (the worker's reaper_interval, 15)."""

    interval_seconds: float = 15.0


class Compactor:
    """Owns folding the failed-count deltas (leader only); runs on the claim
    session."""

    name = "compactor"

    def __init__(self, session: Session, config: CompactorConfig | None = None) -> None:
        self._session = session
        self.config = config or CompactorConfig()

    async def run_once(self) -> int:
        """Fold once; return how many delta rows were folded."""
        rows = await self._session.fetch("failed_counts_compact")
        return int(rows[0][0])

    async def tick(self) -> float:
        await self.run_once()
        return self.config.interval_seconds
