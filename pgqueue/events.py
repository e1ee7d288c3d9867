"""Events a worker emits. Logging, metrics and tests subscribe to them.

The worker's services only emit; they know nothing of log formats or metrics.
Every event is a frozen dataclass; ``name`` is the stable spelling used in logs
and metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from .types import Job

__all__ = [
    "AttemptEnded",
    "ConnectionFailed",
    "ConnectionLost",
    "ConnectionRestored",
    "Event",
    "JobFinished",
    "JobLost",
    "JobStarted",
    "JobsHandedBack",
    "JobsPruned",
    "JobsReclaimed",
    "LeaderChanged",
    "OutcomeRewritten",
    "PruneReport",
    "ReclaimedJob",
    "ServiceError",
    "ServiceRecovered",
    "Subscriber",
    "WorkerStarted",
    "WorkerStopped",
]


@dataclass(frozen=True, slots=True)
class Event:
    name: ClassVar[str] = "event"
    worker_id: str


Subscriber = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class WorkerStarted(Event):
    """A worker is connected and about to claim. ``tasks``: the (queue, task)
    pairs it expects to run, its tasks in their declared queues among its own."""

    name: ClassVar[str] = "worker_started"
    queues: tuple[str, ...]
    concurrency: int
    tasks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class WorkerStopped(Event):
    name: ClassVar[str] = "worker_stopped"


@dataclass(frozen=True, slots=True)
class JobStarted(Event):
    name: ClassVar[str] = "job_started"
    job: Job


@dataclass(frozen=True, slots=True)
class AttemptEnded(Event):
    """An attempt left its slot: its handler returned, raised, was cancelled or
    was interrupted by the stop. The slot is free from here on; the outcome (if
    any) is still being written (:class:`JobFinished` follows once it is)."""

    name: ClassVar[str] = "attempt_ended"
    job: Job


@dataclass(frozen=True, slots=True)
class JobFinished(Event):
    """An attempt's outcome was written: succeeded, retried, snoozed, failed or
    cancelled. ``retry_in_seconds``: for retried and snoozed, when the job is due
    again. A snooze past its task's ``max_snoozes`` is written (and reported) as
    failed, with the reason in ``error``."""

    name: ClassVar[str] = "job_finished"
    job: Job
    outcome: str
    duration_seconds: float
    error: str | None = None
    retry_in_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class JobLost(Event):
    """An outcome was discarded by fencing: the job was no longer ours.

    ``effects``: for an attempt that wrote in ``ctx.transaction()``,
    ``rolled_back`` (the fence matched no row: the handler's writes were rolled
    back with it) or ``unknown`` (the connection failed during COMMIT: the
    outcome and the writes committed together or not at all; if not, the
    reaper returns the job). None for an outcome the completer wrote.
    """

    name: ClassVar[str] = "job_lost"
    job: Job
    outcome: str
    effects: str | None = None


@dataclass(frozen=True, slots=True)
class OutcomeRewritten(Event):
    """An outcome was not stored as the attempt produced it, and was written.

    ``original`` is the outcome the attempt produced, ``outcome`` the one
    written. ``isolated``: the database refused the outcome (``reason`` is its
    error), so it was written alone as ``failed``; otherwise text or a result
    that cannot be stored as it is was rewritten (``reason`` says how).
    """

    name: ClassVar[str] = "outcome_rewritten"
    job: Job
    original: str
    outcome: str
    reason: str
    isolated: bool = False


@dataclass(frozen=True, slots=True)
class ReclaimedJob:
    """One job the reaper took back: ``outcome`` is ``queued`` or ``failed``."""

    id: int
    queue: str
    task: str
    attempt: int
    outcome: str


@dataclass(frozen=True, slots=True)
class JobsReclaimed(Event):
    """The reaper returned stalled jobs to the queue (or failed them)."""

    name: ClassVar[str] = "jobs_reclaimed"
    requeued: tuple[int, ...]
    failed: tuple[int, ...]
    jobs: tuple[ReclaimedJob, ...] = ()


@dataclass(frozen=True, slots=True)
class JobsHandedBack(Event):
    name: ClassVar[str] = "jobs_handed_back"
    job_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class JobsPruned(Event):
    """One statement of the pruner deleted finished jobs of one queue and state
    (and ``batches`` batches whose last job they were). Counted by metrics.
    ``duration_seconds``: the statement's, as the pruner's session saw it."""

    name: ClassVar[str] = "jobs_pruned"
    queue: str
    state: str
    jobs: int
    batches: int = 0
    duration_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class PruneReport(Event):
    """What the pruner deleted since its previous report: emitted at the end of
    a round that deleted something, at most every few minutes (logged once).

    ``jobs`` by final state, ``batches`` gone with their last job,
    ``statements`` run and ``busy_seconds`` spent in them; ``rounds`` completed.
    """

    name: ClassVar[str] = "prune_report"
    jobs: tuple[tuple[str, int], ...]
    batches: int
    statements: int
    busy_seconds: float
    rounds: int


@dataclass(frozen=True, slots=True)
class LeaderChanged(Event):
    name: ClassVar[str] = "leader_changed"
    is_leader: bool


@dataclass(frozen=True, slots=True)
class ConnectionLost(Event):
    name: ClassVar[str] = "connection_lost"
    service: str
    error: str


@dataclass(frozen=True, slots=True)
class ConnectionFailed(Event):
    """A connection that never succeeded failed again (start-up: a wrong DSN, a
    database that does not exist yet or a server that is not up)."""

    name: ClassVar[str] = "connection_failed"
    service: str
    error: str
    retry_in_seconds: float
    gives_up_in_seconds: float


@dataclass(frozen=True, slots=True)
class ConnectionRestored(Event):
    name: ClassVar[str] = "connection_restored"
    service: str


@dataclass(frozen=True, slots=True)
class ServiceError(Event):
    """A service loop caught an error that is not a lost connection (a bug, or a
    statement the database refuses); it goes on after a pause.

    Emitted for every failure, so metrics count each one; ``failures`` numbers
    them within the current streak, and only the first of a streak
    (``failures == 1``) carries the ``traceback`` text, so logs show it once.
    """

    name: ClassVar[str] = "service_error"
    service: str
    error: str
    traceback: str | None = None
    failures: int = 1


@dataclass(frozen=True, slots=True)
class ServiceRecovered(Event):
    """A service ran again without error after ``failures`` service errors in a row."""

    name: ClassVar[str] = "service_recovered"
    service: str
    failures: int
