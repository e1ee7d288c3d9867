"""What the producer reports about an enqueue: a producer span and a count.

The producer calls :func:`observe_enqueue` around its statements. It costs next
to nothing when nobody listens:

- tracing starts only if the application has imported OpenTelemetry (this module
  never imports it): no import, no span, no stored trace context otherwise;
- counting happens only through listeners added with :func:`add_listener`
  (:mod:`pgqueue.observability.metrics` adds one when imported).

Invariant: a listener or tracing failure never fails the enqueue.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TypeVar

from .._params import NewJob

__all__ = ["EnqueueScope", "add_listener", "observe_enqueue"]

logger = logging.getLogger("pgqueue.producer")

T = TypeVar("T")
Listener = Callable[[Sequence[NewJob]], None]

_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    """Call ``listener(jobs)`` after every successful enqueue statement of this process."""
    if listener not in _listeners:
        _listeners.append(listener)


class EnqueueScope:
    """The jobs to insert (with their trace context) and what to report when done.

    Use as ``with observe_enqueue(jobs) as scope: return scope.done(insert(scope.jobs))``.
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
        """Report the inserted ids; return them unchanged."""
        for listener in _listeners:
            try:
                listener(self.jobs)
            except Exception:
                logger.exception("enqueue listener failed")
        return ids


def observe_enqueue(jobs: list[NewJob]) -> EnqueueScope:
    """A scope around one enqueue call's statements (see the module docstring)."""
    if "opentelemetry.trace" in sys.modules and jobs:
        from .tracing import producer_scope

        return producer_scope(jobs)
    return EnqueueScope(jobs)
