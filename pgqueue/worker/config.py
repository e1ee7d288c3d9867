"""Worker settings with their defaults, validated with the field's name."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .._dsn import DEFAULT_POOLER, POOLERS
from ..errors import ConfigError, InvalidJobError
from ..producer.params import validate_queue
from ..retention import DEFAULT_RETENTION, Retention
from .queue_specs import MAX_WEIGHT, QUEUE_ORDERS, QueueSpec, parse_queues

__all__ = ["DEFAULT_POOLER", "POOLERS", "QUEUE_ORDERS", "ConfigError", "QueueSpec",
           "WorkerConfig", "parse_queues"]

DEFAULT_CONCURRENCY = 10
DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_STALL_TIMEOUT = 60.0
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
DEFAULT_STARTUP_TIMEOUT = 60.0
# Seconds between the INFO lines that count finished jobs per queue (succeeded
# jobs get a line each only at DEBUG: see pgqueue.observability.log_summary).
DEFAULT_LOG_SUMMARY_INTERVAL = 30.0
# Behind a transaction-mode pooler with no direct connection to LISTEN on, the
# poll is the only wake-up: a short one. An idle poll is one claim and one
# next-due look-up.
DEFAULT_POOLER_POLL_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a worker runs.

    - ``queues``: queues to claim from (None: every queue the registry's tasks use).
    - ``queue_slots``: at most this many jobs of a queue run at once on this
      worker (``--queues email=10,payment=2``); queues not named share the rest.
    - ``concurrency``: jobs run at once (default 10; with a slot count for every
      queue, their sum).
    - ``poll_interval``: seconds between claims when no notification comes (5;
      ``Worker`` takes 0.5 when it has no LISTEN, behind a transaction pooler).
    - ``heartbeat_interval``: seconds between heartbeats (5).
    - ``stall_timeout``: a running job whose heartbeat is older is reclaimed (60);
      must be at least 3 heartbeat intervals so a slow heartbeat never loses a job.
    - ``shutdown_timeout``: grace period for running jobs on SIGTERM (30).
    - ``startup_timeout``: give up (``DatabaseUnavailableError``) when no connection
      succeeded within this many seconds of start (60). A database that goes away
      after start-up is waited for as long as it takes.
    - ``pooler``: what sits between the worker and PostgreSQL (``none``,
      ``session`` or ``transaction``; see :data:`POOLERS`). With
      ``transaction`` the worker's sessions use no server-side prepared
      statements and no session settings (:attr:`pooled`).
    - ``retention``: how long history keeps finished jobs of each final state
      (:class:`~pgqueue.retention.Retention`; succeeded 1 day, cancelled 7
      days, failed 30 days); the leader prunes older ones. Queues may override
      it (:func:`pgqueue.set_retention`).
    - ``log_summary_interval``: seconds between the INFO lines that count the
      jobs finished per queue (30; 0: none). Only read when the worker logs.
    - ``transaction_pool_size``: the most connections each of the two pools behind
      ``ctx.transaction()`` opens (None: the concurrency; :attr:`handler_pool_size`).
    """

    queues: tuple[str, ...] | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    queue_slots: Mapping[str, int] = field(default_factory=dict)
    queue_weights: Mapping[str, int] = field(default_factory=dict)
    queue_order: str | None = None
    fair_queues: frozenset[str] = frozenset()
    poll_interval: float = DEFAULT_POLL_INTERVAL
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    pooler: str = DEFAULT_POOLER
    retention: Retention = DEFAULT_RETENTION
    log_summary_interval: float = DEFAULT_LOG_SUMMARY_INTERVAL
    transaction_pool_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.retention, Retention):
            raise ConfigError(f"retention must be a Retention, got {self.retention!r}")
        if self.queues is not None:
            if not self.queues:
                raise ConfigError("queues must name at least one queue")
            for queue in self.queues:
                try:
                    validate_queue(queue, field="queue")
                except InvalidJobError as exc:
                    raise ConfigError(str(exc)) from None
        for queue, slots in self.queue_slots.items():
            if self.queues is None or queue not in self.queues:
                raise ConfigError(f"queue_slots names {queue!r}, which is not in queues")
            if not isinstance(slots, int) or isinstance(slots, bool) or not 1 <= slots <= 10_000:
                raise ConfigError(f"slots for queue {queue!r} must be 1 to 10000, got {slots!r}")
        self._check_order()
        if self.pooler not in POOLERS:
            raise ConfigError(f"pooler must be one of {', '.join(POOLERS)}, got {self.pooler!r}")
        if not isinstance(self.concurrency, int) or not 1 <= self.concurrency <= 10_000:
            raise ConfigError(f"concurrency must be 1 to 10000, got {self.concurrency!r}")
        size = self.transaction_pool_size
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                                 or not 1 <= size <= 10_000):
            raise ConfigError(f"transaction_pool_size must be 1 to 10000, got {size!r}")
        for name in ("poll_interval", "heartbeat_interval", "stall_timeout", "shutdown_timeout",
                     "startup_timeout", "log_summary_interval"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.poll_interval <= 0 or self.heartbeat_interval <= 0 or self.startup_timeout <= 0:
            raise ConfigError("poll_interval, heartbeat_interval and startup_timeout must be > 0")
        if self.stall_timeout < 3 * self.heartbeat_interval:
            raise ConfigError(
                f"stall_timeout ({self.stall_timeout} s) must be at least 3 x "
                f"heartbeat_interval ({self.heartbeat_interval} s), or live jobs get reclaimed"
            )

    def _check_order(self) -> None:
        for queue in sorted(self.fair_queues):
            if self.queues is None or queue not in self.queues:
                raise ConfigError(f"fair_queues names {queue!r}, which is not in queues")
        for queue, weight in self.queue_weights.items():
            if self.queues is None or queue not in self.queues:
                raise ConfigError(f"queue_weights names {queue!r}, which is not in queues")
            if not isinstance(weight, int) or isinstance(weight, bool) \
                    or not 1 <= weight <= MAX_WEIGHT:
                raise ConfigError(f"weight for queue {queue!r} must be 1 to {MAX_WEIGHT}, "
                                  f"got {weight!r}")
        order = self.queue_order
        if order is None:
            return
        if order not in QUEUE_ORDERS:
            raise ConfigError(f"queue_order must be one of {', '.join(QUEUE_ORDERS)}, "
                              f"got {order!r}")
        if order == "strict" and self.queue_weights:
            raise ConfigError("queue_order 'strict' takes the queues in the order given and "
                              "no weights: drop the weights or use queue_order 'weighted'")
        if order == "priority" and self.queue_weights:
            raise ConfigError("queue_order 'priority' ignores weights: drop the weights or "
                              "use queue_order 'weighted'")
        if order != "priority" and self.queues is None:
            raise ConfigError(f"queue_order {order!r} needs the queues named, in order")

    @property
    def order(self) -> str:
        """The queue order in effect (``queue_order`` resolved)."""
        if self.queue_order is not None:
            return self.queue_order
        return "weighted" if self.queue_weights else "priority"

    @property
    def handler_pool_size(self) -> int:
        """The most connections each pool behind ``ctx.transaction()`` opens."""
        return self.transaction_pool_size or self.concurrency

    @property
    def pooled(self) -> bool:
        """Whether consecutive transactions of one connection may meet different
        server sessions (a transaction-mode pooler)."""
        return self.pooler == "transaction"

    @property
    def reaper_interval(self) -> float:
        """How often the leader looks for stalled jobs."""
        return min(30.0, max(0.5, self.stall_timeout / 4))
