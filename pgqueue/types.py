"""Values shared by the producer, the worker and the tools: states, jobs, contexts."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["Job", "JobContext", "JobState"]

_EVENT_LOCK = threading.Lock()


class JobState(StrEnum):
    """A job's state, spelled as in SQL (type ``pgqueue.job_state``)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed attempt of a job, as the worker sees it."""

    id: int
    queue: str
    task: str
    args: Any
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime
    timeout_seconds: float | None = None
    trace_context: str | None = None
    # The token of the claim that started this attempt: (id, claim_token) names
    # exactly one attempt, and the attempt's outcome is written fenced on it.
    claim_token: int | None = None
    # Its concurrency_key, as the claim returned it (a fair queue's cursor).
    concurrency_key: str | None = None


class JobContext:
    """What a handler may know about the attempt it runs.

    A handler receives it by declaring a parameter annotated ``pgqueue.JobContext``.
    ``stop_requested`` turns true when the worker is shutting down, the attempt
    timed out or the job was cancelled (then ``cancel_requested`` is true too): a
    long-running plain function should check it and return early.
    """

    # Flags, not threading.Events: a worker makes one context per attempt, and
    # most handlers never wait. The Event behind wait_for_stop is made on first
    # use, under _EVENT_LOCK so a stop request cannot slip between the check and
    # the creation.
    __slots__ = ("_cancelled", "_stop_event", "_stopped", "job", "worker_id")

    def __init__(self, job: Job, worker_id: str) -> None:
        self.job = job
        self.worker_id = worker_id
        self._stopped = False
        self._cancelled = False
        self._stop_event: threading.Event | None = None

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def queue(self) -> str:
        return self.job.queue

    @property
    def task(self) -> str:
        return self.job.task

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def max_attempts(self) -> int:
        return self.job.max_attempts

    @property
    def enqueued_at(self) -> datetime:
        return self.job.created_at

    @property
    def started_at(self) -> datetime:
        return self.job.started_at

    @property
    def stop_requested(self) -> bool:
        """True once the worker asked this attempt to stop (shutdown, timeout, cancel)."""
        return self._stopped

    @property
    def cancel_requested(self) -> bool:
        """True once someone cancelled this job (``pgqueue.cancel``)."""
        return self._cancelled

    def request_cancel(self) -> None:
        """Mark the job cancelled (called by the worker); also requests a stop."""
        self._cancelled = True
        self.request_stop()

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds for a stop request; return whether one came."""
        with _EVENT_LOCK:
            if self._stop_event is None:
                self._stop_event = threading.Event()
                if self._stopped:
                    self._stop_event.set()
            event = self._stop_event
        return event.wait(timeout)

    def request_stop(self) -> None:
        """Ask the handler to stop (called by the worker)."""
        with _EVENT_LOCK:
            self._stopped = True
            if self._stop_event is not None:
                self._stop_event.set()

    def __repr__(self) -> str:
        return f"JobContext(id={self.id}, task={self.task!r}, attempt={self.attempt})"
