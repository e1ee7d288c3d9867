"""Sampler (leader only): samples every queue's depth by state and lag into
pgqueue.queue_samples (queue_samples_take.sql), for the dashboard's depth and
lag charts and its counts, and drops samples older than ``keep_seconds``.

A sample counts every live job (pgqueue.queue_stats_rows), so the pause
after a slow one stretches: the sampler spends at most
a ``max_duty`` share of the time counting (a sample that took 1 s is followed
by a pause of 9 s rather than ``interval_seconds``), and the samples are never
further apart than ``max_interval_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..session import Session
from .rollup import DEFAULT_ROLLUP_KEEP_SECONDS

__all__ = ["DEFAULT_SAMPLE_INTERVAL_SECONDS", "Sampler", "SamplerConfig"]

DEFAULT_SAMPLE_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class SamplerConfig:
    """- ``interval_seconds``: between samples when counting is quick (5).
    - ``max_duty``: the largest share of time spent counting (0.1).
    - ``max_interval_seconds``: the longest pause between samples (60).
    - ``keep_seconds``: samples older than this are removed (8 days).
    """

    interval_seconds: float = DEFAULT_SAMPLE_INTERVAL_SECONDS
    max_duty: float = 0.1
    max_interval_seconds: float = 60.0
    keep_seconds: float = DEFAULT_ROLLUP_KEEP_SECONDS


class Sampler:
    """Owns the queue samples (leader only); runs on the leader's summaries
    session (see :mod:`pgqueue.worker.maintenance`)."""

    name = "sampler"

    def __init__(self, session: Session, config: SamplerConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session
        self.config = config or SamplerConfig()
        self._clock = clock
        self.last_seconds = 0.0

    async def run_once(self) -> int:
        """Take one sample; return how many queues it has."""
        started = self._clock()
        rows = await self._session.fetch("queue_samples_take",
                                         {"keep_seconds": self.config.keep_seconds})
        self.last_seconds = self._clock() - started
        return int(rows[0][0])

    def pause_seconds(self) -> float:
        """The pause after the last sample: its interval, stretched to keep the duty."""
        config = self.config
        stretched = self.last_seconds / config.max_duty - self.last_seconds
        return min(config.max_interval_seconds, max(config.interval_seconds, stretched))

    async def tick(self) -> float:
        await self.run_once()
        return self.pause_seconds()
