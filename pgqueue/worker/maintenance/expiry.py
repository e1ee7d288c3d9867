"""Expiry (leader only): queued jobs past their ``expires_at`` end ``cancelled``.

Each statement ends at most ``limit`` jobs (job_expire.sql) and settles what
depended on them; :meth:`Expiry.run_once` repeats until one ends fewer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..session import Session

__all__ = ["DEFAULT_EXPIRY_LIMIT", "Expiry", "ExpiryConfig", "ExpiryResult"]

DEFAULT_EXPIRY_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class ExpiryConfig:
    """- ``interval_seconds``: between runs (the worker's reaper_interval, 15).
    - ``limit``: jobs per statement (1000).
    """

    interval_seconds: float = 15.0
    limit: int = DEFAULT_EXPIRY_LIMIT


@dataclass(frozen=True, slots=True)
class ExpiryResult:
    expired: tuple[int, ...]
    statements: int


class Expiry:
    """Owns ending queued jobs past their ``expires_at`` (leader only); runs on
    the claim session."""

    name = "expiry"

    def __init__(self, session: Session, config: ExpiryConfig | None = None) -> None:
        self._session = session
        self.config = config or ExpiryConfig()

    async def run_once(self) -> ExpiryResult:
        expired: list[int] = []
        statements = 0
        while True:
            rows = await self._session.fetch("job_expire", {"limit": self.config.limit})
            statements += 1
            ids = [row[0] for row in rows]
            if ids:
                await self._session.fetch("job_after_finish", {"ids": ids})
                expired.extend(ids)
            if len(ids) < self.config.limit:
                break
            await asyncio.sleep(0)  # let a claim waiting for the session go first
        return ExpiryResult(tuple(expired), statements)

    async def tick(self) -> float:
        await self.run_once()
        return self.config.interval_seconds
