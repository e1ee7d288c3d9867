"""The producer's hook points: what it tells others about an enqueue.

The producer knows no subscriber; observability attaches itself here when it
is set up, and an application may too:

- :func:`on_enqueued` adds a listener called with one :class:`Enqueued` event
  per (queue, task) after every successful enqueue statement of this process
  (:mod:`pgqueue.observability.metrics` adds the ``enqueued`` counter when
  imported).
- :func:`on_queue_depth` adds a listener called with one :class:`QueueDepth`
  event per enqueue call that a queue's ``max_depth`` refused or that took a
  queue past its ``warn_depth`` (the ``pgqueue_enqueue_refused`` and
  ``pgqueue_enqueue_over_warn_depth`` counters).
- :func:`set_trace_hook` sets the one function that may wrap an enqueue's
  statements in a scope of its own and give the jobs a trace context to store
  (OpenTelemetry's producer span; the package attaches it lazily, only in a
  process that has imported OpenTelemetry).

Invariant: with no listener and no trace hook an enqueue pays one attribute
check; a listener's failure is logged and never fails the enqueue.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from .params import NewJob

__all__ = ["EnqueueScope", "Enqueued", "QueueDepth", "announce_depth", "enqueue_scope",
           "on_enqueued", "on_queue_depth", "set_trace_hook"]

logger = logging.getLogger("pgqueue.producer")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Enqueued:
    """``count`` jobs of ``task`` were inserted into ``queue`` by one statement.

    Sent once the statement succeeded; the caller's transaction may still roll back.
    """

    queue: str
    task: str
    count: int


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """An enqueue of ``adding`` jobs met a queue at ``depth`` live jobs (counted up to
    its larger threshold): ``refused`` by its ``max_depth``, or let past its ``warn_depth``."""

    queue: str
    depth: int
    adding: int
    max_depth: int | None
    warn_depth: int | None
    refused: bool


Listener = Callable[[Enqueued], None]
DepthListener = Callable[[QueueDepth], None]
TraceHook = Callable[[list[NewJob]], "EnqueueScope | None"]

_listeners: list[Listener] = []
_trace_hook: list[TraceHook] = []  # at most one
_depth_listeners: list[DepthListener] = []


def on_enqueued(listener: Listener) -> None:
    """Call ``listener(event)`` after every successful enqueue statement of this process."""
    if listener not in _listeners:
        _listeners.append(listener)


def on_queue_depth(listener: DepthListener) -> None:
    """Call ``listener(event)`` when an enqueue is refused or passes a warn_depth."""
    if listener not in _depth_listeners:
        _depth_listeners.append(listener)


def announce_depth(event: QueueDepth) -> None:
    """Tell the depth listeners; a listener's failure is logged, never raised."""
    for listener in _depth_listeners:
        try:
            listener(event)
        except Exception:
            logger.exception("queue depth listener failed")


def set_trace_hook(hook: TraceHook | None) -> None:
    """Let ``hook(jobs)`` return the scope of each enqueue (None: the plain scope)."""
    _trace_hook[:] = [] if hook is None else [hook]


class EnqueueScope:
    """The jobs to insert (with their trace context) and what to report when done.

    Use as ``with enqueue_scope(jobs) as scope: return scope.done(insert(scope.jobs))``.
    """

    __slots__ = ("jobs",)

    def __init__(self, jobs: list[NewJob]) -> None:
        self.jobs = jobs

    def __enter__(self) -> EnqueueScope:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    def done(self, ids: T) -> T:
        """Report the inserted jobs to the listeners; return ``ids`` unchanged."""
        if _listeners:
            _announce(self.jobs)
        return ids


def enqueue_scope(jobs: list[NewJob]) -> EnqueueScope:
    """A scope around one enqueue call's statements (see the module docstring)."""
    if _trace_hook and jobs:
        scope = _trace_hook[0](jobs)
        if scope is not None:
            return scope
    return EnqueueScope(jobs)


def _announce(jobs: list[NewJob]) -> None:
    if len(jobs) == 1:
        events = [Enqueued(jobs[0].queue, jobs[0].task, 1)]
    else:
        tally = Counter((job.queue, job.task) for job in jobs)
        events = [Enqueued(queue, task, n) for (queue, task), n in tally.items()]
    for listener in _listeners:
        for event in events:
            try:
                listener(event)
            except Exception:
                logger.exception("enqueue listener failed")
