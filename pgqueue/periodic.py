"""Periodic schedules: cron expressions and the pure rules for their ticks.

A tick is due when its time has come. Each evaluation handles at most the
newest due tick, so downtime never enqueues once per missed tick:
- ``on_missed="skip"`` (default): the newest tick runs only if it is recent
  (within ``tolerance_seconds``, which covers a leader hand-over); an older
  one is recorded as handled without a job.
- ``on_missed="run_once"``: the newest tick runs however late it is.

Cron parsing is croniter's: five fields (minute precision), or six with the
seconds first (``*/10 * * * * *`` = every ten seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter

from .errors import TaskError

__all__ = ["ON_MISSED", "Schedule"]

ON_MISSED = ("skip", "run_once")
_EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    cron: str
    task: str
    queue: str
    args_json: str
    on_missed: str = "skip"

    def __post_init__(self) -> None:
        if not isinstance(self.cron, str) or not croniter.is_valid(
                self.cron, second_at_beginning=self._has_seconds):
            raise TaskError(f"cron {self.cron!r} of periodic task {self.name!r} is not a valid "
                            "cron expression (5 fields, or 6 with seconds first)")
        if self.on_missed not in ON_MISSED:
            raise TaskError(f"on_missed must be one of {ON_MISSED}, got {self.on_missed!r}")

    @property
    def _has_seconds(self) -> bool:
        return isinstance(self.cron, str) and len(self.cron.split()) == 6

    def latest_tick(self, now: datetime) -> datetime:
        """The newest tick at or before ``now``."""
        it = croniter(self.cron, now + _EPSILON, second_at_beginning=self._has_seconds)
        return it.get_prev(datetime)  # type: ignore[no-any-return]

    def next_tick(self, after: datetime) -> datetime:
        """The first tick strictly after ``after``."""
        it = croniter(self.cron, after, second_at_beginning=self._has_seconds)
        return it.get_next(datetime)  # type: ignore[no-any-return]

    def decide(self, last_tick: datetime | None, now: datetime,
               tolerance_seconds: float) -> tuple[datetime, bool] | None:
        """The tick to handle now and whether to enqueue it; None when none is due."""
        tick = self.latest_tick(now)
        if last_tick is not None and tick <= last_tick:
            return None
        late = (now - tick).total_seconds() > tolerance_seconds
        return tick, self.on_missed == "run_once" or not late
