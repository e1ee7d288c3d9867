"""The loop every maintenance service runs in: tick, pause, survive errors.

Invariants:
- a lost connection (:func:`~pgqueue.worker.session.is_connection_error`) is
  reported once per outage (``ConnectionLost``), its end once
  (``ConnectionRestored``); the session reconnects at the next statement;
- any other exception is a bug or a statement the database refused: each one
  emits ``ServiceError`` (metrics count them all), the first of a streak with
  its traceback (logs show it once), and ``ServiceRecovered`` ends the streak;
- after a failure the service waits ``backoff_seconds(n)``: exponential from
  ``backoff_initial_seconds``, doubling, capped at ``backoff_max_seconds``;
- a failure ends only its own service's tick. Sessions are autocommit, so a
  refused statement rolled back alone and left the connection usable: the
  other services, the heartbeat and the claims on the same session go on.
"""

from __future__ import annotations

import asyncio
import math
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ...events import ConnectionLost, ConnectionRestored, Event, ServiceError, ServiceRecovered
from ..config import ConfigError
from ..session import is_connection_error

__all__ = [
    "DEFAULT_BACKOFF_INITIAL_SECONDS",
    "DEFAULT_BACKOFF_MAX_SECONDS",
    "LoopConfig",
    "Service",
    "run_service",
]

DEFAULT_BACKOFF_INITIAL_SECONDS = 1.0
DEFAULT_BACKOFF_MAX_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """How a service loop backs off after errors.

    - ``backoff_initial_seconds``: pause after the first failure of a streak (1).
    - ``backoff_max_seconds``: the pause doubles per failure up to this (60).
    """

    backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS
    backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS

    def __post_init__(self) -> None:
        for name in ("backoff_initial_seconds", "backoff_max_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ConfigError("backoff_max_seconds must be >= backoff_initial_seconds")

    def backoff_seconds(self, failures: int) -> float:
        """The pause after the ``failures``-th failure in a row (1-based)."""
        exponent = min(max(failures, 1) - 1, 64)
        return min(self.backoff_max_seconds, self.backoff_initial_seconds * 2.0 ** exponent)


class Service(Protocol):
    """A maintenance service as its loop sees it."""

    name: str

    async def tick(self) -> float:
        """Do the service's work once; return the seconds until the next tick."""
        ...


async def run_service(service: Service, *, worker_id: str, emit: Callable[[Event], None],
                      config: LoopConfig | None = None,
                      gate: Callable[[], Awaitable[None]] | None = None,
                      sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Tick ``service`` until cancelled. ``gate`` is awaited before every tick
    (the leader-only services wait there while this worker does not lead)."""
    config = config or LoopConfig()
    failures = 0  # ticks failed in a row, of any kind
    errors = 0  # of them, the ones that were not a lost connection
    lost = False
    while True:
        if gate is not None:
            await gate()
        try:
            pause = await service.tick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            if is_connection_error(exc):
                if not lost:
                    lost = True
                    emit(ConnectionLost(worker_id, service.name,
                                        str(exc).strip() or type(exc).__name__))
            else:
                errors += 1
                emit(ServiceError(
                    worker_id, service.name, f"{type(exc).__name__}: {str(exc).strip()}",
                    traceback="".join(traceback.format_exception(exc)) if errors == 1 else None,
                    failures=errors))
            await sleep(config.backoff_seconds(failures))
            continue
        if lost:
            emit(ConnectionRestored(worker_id, service.name))
        if errors:
            emit(ServiceRecovered(worker_id, service.name, errors))
        failures = errors = 0
        lost = False
        await sleep(max(0.0, pause))
