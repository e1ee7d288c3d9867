"""Roll-up (leader only): adds finished jobs to the per-minute roll-ups the
dashboard's charts read (pgqueue.finished_rollups, finished_rollups_add.sql).

Each statement adds at most ``span`` whole minutes from the watermark on and
moves the watermark in the same transaction, so a statement that fails or a
leader that dies mid-way counts nothing twice and loses nothing: the next one
starts from the watermark. Two leaders take turns on the watermark's row.
:meth:`Rollup.run_once` repeats until the watermark is ``settle_seconds``
behind now, at most ``max_statements`` times per tick. The span adapts to how many jobs finished: it
halves after a statement that read more than ``target_jobs`` rows, doubles
after one that read less than a quarter of that (a gap in history is crossed
in a few statements), within 1 minute and ``max_span_minutes``. Buckets older
than ``keep_seconds`` are removed once per tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..session import Session

__all__ = ["DEFAULT_ROLLUP_KEEP_SECONDS", "Rollup", "RollupConfig", "RollupResult"]

#: Roll-ups (and queue samples) are kept 8 days: the longest chart is a week.
DEFAULT_ROLLUP_KEEP_SECONDS = 8 * 86400.0


@dataclass(frozen=True, slots=True)
class RollupConfig:
    """- ``interval_seconds``: between ticks (the worker's reaper_interval, 15).
    - ``settle_seconds``: how far behind now the roll-ups stop (60): a finish
      whose transaction commits later than that after it began is in history
      but not in the roll-ups.
    - ``target_jobs``: rows a statement aims to read (50,000).
    - ``max_span_minutes``: the most minutes one statement covers (1440).
    - ``max_statements``: statements per tick (20).
    - ``keep_seconds``: buckets older than this are removed (8 days).
    """

    interval_seconds: float = 15.0
    settle_seconds: float = 60.0
    target_jobs: int = 50_000
    max_span_minutes: int = 1440
    max_statements: int = 20
    keep_seconds: float = DEFAULT_ROLLUP_KEEP_SECONDS


@dataclass(frozen=True, slots=True)
class RollupResult:
    jobs: int
    statements: int
    rolled_until: datetime | None


class Rollup:
    """Owns adding finished jobs to the roll-ups (leader only); runs on the
    leader's summaries session (see :mod:`pgqueue.worker.maintenance`)."""

    name = "rollup"

    def __init__(self, session: Session, config: RollupConfig | None = None) -> None:
        self._session = session
        self.config = config or RollupConfig()
        self.span_minutes = 60

    async def run_once(self) -> RollupResult:
        """Add what finished since the watermark, then prune; return what was done."""
        config = self.config
        jobs = statements = 0
        until: datetime | None = None
        while statements < config.max_statements:
            span = self.span_minutes
            rows = await self._session.fetch("finished_rollups_add", {
                "max_minutes": span, "settle_seconds": config.settle_seconds})
            statements += 1
            start, until, added = rows[0]
            jobs += int(added)
            covered = (until - start).total_seconds() / 60 if start and until else 0
            self._adapt(int(added))
            if covered < span:  # caught up: it stopped at now - settle
                break
        await self._session.fetch("finished_rollups_prune", {"keep_seconds": config.keep_seconds})
        return RollupResult(jobs, statements, until)

    def _adapt(self, added: int) -> None:
        if added > self.config.target_jobs:
            self.span_minutes = max(1, self.span_minutes // 2)
        elif added < self.config.target_jobs // 4:
            self.span_minutes = min(self.config.max_span_minutes, self.span_minutes * 2)

    async def tick(self) -> float:
        await self.run_once()
        return self.config.interval_seconds
