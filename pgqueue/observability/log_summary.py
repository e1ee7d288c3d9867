"""A periodic summary of finished jobs per queue, logged at INFO.

A line per succeeded job costs the worker about as much as running a no-op job
does, so succeeded (and snoozed) jobs are logged one by one only at DEBUG (see
:mod:`.logs`). At INFO the worker says instead, every ``interval`` seconds in
which jobs finished, one line per queue: ``jobs finished`` with how many
succeeded, were retried, snoozed, failed and were cancelled, their mean and longest run
time, and the seconds the line covers. Retries (WARNING) and failures (ERROR)
keep a line per job as well: an operator wants each one.

Invariant: every outcome the worker wrote while INFO was enabled is counted in
exactly one summary line; what is still counted when the worker stops is logged
before ``worker stopped``. Nothing is logged for an interval without finished
jobs (no idle lines).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..events import Event, JobFinished, WorkerStopped
from ..worker.config import DEFAULT_LOG_SUMMARY_INTERVAL

__all__ = ["DEFAULT_LOG_SUMMARY_INTERVAL", "QueueSummary"]

# Always in a summary line, 0 when none: a reader never has to guess a missing key.
OUTCOMES = ("succeeded", "retried", "snoozed", "failed", "cancelled")

logger = logging.getLogger("pgqueue.worker")


@dataclass(slots=True)
class _Tally:
    """One queue's finished jobs since its last summary line."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    jobs: int = 0
    duration_total: float = 0.0
    duration_max: float = 0.0


class QueueSummary:
    """A worker event subscriber that logs finished jobs per queue every ``interval`` s.

    The first outcome after a line starts the next interval; its line is logged
    by a timer on the worker's loop when the interval ends (or at the next
    outcome after it, when the subscriber runs outside an event loop), and at
    :class:`~pgqueue.events.WorkerStopped`. ``interval`` 0 turns it off.
    """

    def __init__(self, interval: float = DEFAULT_LOG_SUMMARY_INTERVAL, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(interval, int | float) or isinstance(interval, bool) \
                or not math.isfinite(interval) or interval < 0:
            raise ValueError(f"log_summary_interval must be a number of seconds >= 0, "
                             f"got {interval!r}")
        self.interval = float(interval)
        self._clock = clock
        self._tallies: dict[str, _Tally] = {}
        self._since: float | None = None  # when the current interval started
        self._timer: asyncio.TimerHandle | None = None
        self._worker_id = ""

    def __call__(self, event: Event) -> None:
        if type(event) is JobFinished:
            if self.interval and logger.isEnabledFor(logging.INFO):
                self._count(event)
        elif isinstance(event, WorkerStopped):
            self.flush()

    def _count(self, event: JobFinished) -> None:
        queue = event.job.queue
        tally = self._tallies.get(queue)
        if tally is None:
            tally = self._tallies[queue] = _Tally()
        tally.outcomes[event.outcome] = tally.outcomes.get(event.outcome, 0) + 1
        tally.jobs += 1
        duration = event.duration_seconds
        tally.duration_total += duration
        tally.duration_max = max(tally.duration_max, duration)
        if self._since is None:
            self._worker_id = event.worker_id
            self._start_interval()
        elif self._timer is None and self._clock() - self._since >= self.interval:
            self.flush()  # no loop to time it: the next outcome after the interval does

    def _start_interval(self) -> None:
        self._since = self._clock()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._timer = None
        else:
            self._timer = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Log a line per queue for the jobs counted so far, and start afresh."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._since is None:
            return
        seconds = round(self._clock() - self._since, 3)
        tallies, self._tallies, self._since = self._tallies, {}, None
        for queue, tally in tallies.items():
            fields: dict[str, Any] = {
                "worker_id": self._worker_id, "event": "jobs_finished", "queue": queue,
                **tally.outcomes,
                "duration_ms_mean": round(tally.duration_total / tally.jobs * 1000, 3),
                "duration_ms_max": round(tally.duration_max * 1000, 3),
                "interval_seconds": seconds}
            logger.info("jobs finished", extra=fields)
