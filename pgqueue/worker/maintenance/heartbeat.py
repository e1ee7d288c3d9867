"""Heartbeat: one statement refreshes this worker's row and its jobs' heartbeats.

Only the attempts the worker knows it holds, by (job id, claim token), are
refreshed (job_heartbeat.sql): a job claimed by a statement whose answer was
lost is left for the reaper, and a stale process that shares a fixed worker_id
cannot keep a newer attempt of its job alive. The
same statement reports jobs whose cancellation was requested, in case their
NOTIFY was missed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import DEFAULT_HEARTBEAT_INTERVAL
from ..session import Session

__all__ = ["Heartbeat", "HeartbeatConfig", "HeartbeatResult", "HeldAttempts"]

# What the worker holds now: (job id, claim token) of each attempt.
HeldAttempts = Callable[[], list[tuple[int, int | None]]]


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    """- ``interval_seconds``: between heartbeats (the worker's heartbeat_interval, 5)."""

    interval_seconds: float = DEFAULT_HEARTBEAT_INTERVAL


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    refreshed: int
    cancel_requested: tuple[int, ...]


class Heartbeat:
    """Owns this worker's row (register, refresh) and its attempts' heartbeats;
    runs on the claim session."""

    name = "heartbeat"

    def __init__(self, session: Session, identity: Mapping[str, Any], *,
                 held_ids: HeldAttempts,
                 on_cancel: Callable[[list[int]], None] | None = None,
                 config: HeartbeatConfig | None = None) -> None:
        self._session = session
        self._identity = dict(identity)
        self._held_ids = held_ids
        self._on_cancel = on_cancel
        self.config = config or HeartbeatConfig()

    async def register(self) -> None:
        """Announce the worker (or refresh its row)."""
        await self._session.fetch("worker_register", self._identity)

    async def run_once(self) -> HeartbeatResult:
        """Refresh once; hand the ids whose cancellation was requested to ``on_cancel``."""
        held = self._held_ids()
        rows = await self._session.fetch("job_heartbeat", {
            **self._identity, "ids": [h[0] for h in held], "tokens": [h[1] for h in held]})
        refreshed, _, cancel_ids = rows[0]
        result = HeartbeatResult(int(refreshed), tuple(cancel_ids or ()))
        if result.cancel_requested and self._on_cancel is not None:
            self._on_cancel(list(result.cancel_requested))
        return result

    async def tick(self) -> float:
        await self.run_once()
        return self.config.interval_seconds
