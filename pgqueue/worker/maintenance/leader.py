"""Leader: a lease row (pgqueue.leader) that one worker at a time holds.

States: follower -> leader when ``leader_try_acquire`` returns this worker
(the row was free, expired, or already ours); leader -> follower when a renewal
returns nothing (another worker took an expired lease), when the renewal
itself fails (connection lost or statement refused: whether the lease is still
ours is unknown, so the worker stops acting as leader at once; the row expires
by itself), or at :meth:`Leader.resign` on a clean stop.

Only the lease statement decides leadership: an error in a leader-only service
(reaper, scheduler...) never changes it. Each election starts a new ``term``,
so services that sync state on taking over (the scheduler) know to redo it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ...events import Event, LeaderChanged
from ..config import DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_STALL_TIMEOUT
from ..session import Session

__all__ = ["Leader", "LeaderConfig"]


@dataclass(frozen=True, slots=True)
class LeaderConfig:
    """- ``interval_seconds``: between renewals (the worker's tick, 5).
    - ``lease_seconds``: how long a lease lasts unrenewed: two ticks, at least
      half the stall timeout (30 with the defaults).
    """

    interval_seconds: float = DEFAULT_HEARTBEAT_INTERVAL
    lease_seconds: float = max(2 * DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_STALL_TIMEOUT / 2)


class Leader:
    """Owns this worker's side of the lease (elect, renew, resign); runs on the
    claim session."""

    name = "leader"

    def __init__(self, session: Session, worker_id: str, emit: Callable[[Event], None],
                 config: LeaderConfig | None = None) -> None:
        self._session = session
        self._worker_id = worker_id
        self._emit = emit
        self.config = config or LeaderConfig()
        self.is_leader = False
        self.term = 0
        self._elected: asyncio.Event | None = None

    async def run_once(self) -> bool:
        """Take or renew the lease; return whether this worker leads now."""
        rows = await self._session.fetch("leader_try_acquire", {
            "worker_id": self._worker_id, "ttl_seconds": self.config.lease_seconds})
        self._set(bool(rows))
        return self.is_leader

    async def tick(self) -> float:
        try:
            await self.run_once()
        except Exception:  # not on cancellation: resign() still gives the lease up
            self.step_down()
            raise
        return self.config.interval_seconds

    def step_down(self) -> None:
        """Stop acting as leader now (the lease row expires by itself)."""
        self._set(False)

    async def resign(self) -> None:
        """Give the lease up, so another worker takes over at its next try."""
        if self.is_leader:
            await self._session.fetch("leader_resign", {"worker_id": self._worker_id})
            self._set(False)

    async def wait_elected(self) -> None:
        """Return once this worker leads."""
        await self._event().wait()

    def _event(self) -> asyncio.Event:
        if self._elected is None:
            self._elected = asyncio.Event()
            if self.is_leader:
                self._elected.set()
        return self._elected

    def _set(self, value: bool) -> None:
        if value == self.is_leader:
            return
        self.is_leader = value
        if value:
            self.term += 1
            self._event().set()
        else:
            self._event().clear()
        self._emit(LeaderChanged(self._worker_id, value))
