"""A worker's per-job metric updates, added up in plain numbers and applied in bulk.

Recording a job straight into prometheus-client costs eight locked value
updates, each behind per-call checks: a quarter of a no-op job's worker CPU. A
:class:`MetricsBuffer` instead adds into plain ints and floats on the worker's
loop, and applies what it holds (one locked update per value that changed):

- half a second (:data:`APPLY_DELAY_SECONDS`) after the first update since the
  last apply, by a timer on the worker's loop;
- whenever the default registry is collected (a scrape of ``/metrics``,
  ``REGISTRY.get_sample_value``): a collector registered before pgqueue's
  metrics asks every live buffer's loop to apply, and waits for it (up to
  :data:`COLLECT_WAIT_SECONDS`), so a scrape sees what was recorded before it;
- at once when recorded outside an event loop, and when asked (the worker's stop).

Invariant: every update is applied exactly once, always on the thread of the
loop that recorded it; a scrape misses nothing recorded before it began unless
that loop is blocked for longer than the wait. In multiprocess mode
(``--processes N``) the supervisor's endpoint reads the children's files, which
the timer keeps at most half a second behind.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["APPLY_DELAY_SECONDS", "COLLECT_WAIT_SECONDS", "HistogramTally", "MetricsBuffer",
           "SeriesTally"]

APPLY_DELAY_SECONDS = 0.5
COLLECT_WAIT_SECONDS = 1.0


def _value_inc(metric: Any) -> Callable[[float], None]:
    """The locked ``inc`` of a labelled child's value, checked once here."""
    metric._raise_if_not_observable()
    inc: Callable[[float], None] = metric._value.inc
    return inc


class HistogramTally:
    """Observations of one histogram child since the last apply."""

    __slots__ = ("_bounds", "_bucket_incs", "_counts", "_sum_inc", "observed", "total")

    def __init__(self, histogram: Any) -> None:
        histogram._raise_if_not_observable()
        self._bounds = list(histogram._upper_bounds)
        self._sum_inc: Callable[[float], None] = histogram._sum.inc
        self._bucket_incs: list[Callable[[float], None]] = [b.inc for b in histogram._buckets]
        self._counts = [0] * len(self._bounds)
        self.observed = 0
        self.total = 0.0

    def observe(self, amount: float) -> None:
        # The first bound at or above the amount, as prometheus-client's observe().
        self._counts[bisect_left(self._bounds, amount)] += 1
        self.observed += 1
        self.total += amount

    def apply(self) -> None:
        if not self.observed:
            return
        self._sum_inc(self.total)
        counts = self._counts
        for i, count in enumerate(counts):
            if count:
                self._bucket_incs[i](count)
                counts[i] = 0
        self.observed = 0
        self.total = 0.0


class SeriesTally:
    """One (queue, task)'s attempts started, outcomes, waits and run times."""

    __slots__ = ("_outcome_incs", "_started_inc", "duration", "outcomes", "queue_wait",
                 "started")

    def __init__(self, started: Any, queue_wait: Any, duration: Any,
                 outcomes: dict[str, Any]) -> None:
        self._started_inc = _value_inc(started)
        self._outcome_incs = {name: _value_inc(child) for name, child in outcomes.items()}
        self.started = 0
        self.outcomes = dict.fromkeys(outcomes, 0)
        self.queue_wait = HistogramTally(queue_wait)
        self.duration = HistogramTally(duration)

    def apply(self) -> None:
        if self.started:
            self._started_inc(self.started)
            self.started = 0
        for name, count in self.outcomes.items():
            if count:
                self._outcome_incs[name](count)
                self.outcomes[name] = 0
        self.queue_wait.apply()
        self.duration.apply()


class MetricsBuffer:
    """What one worker recorded since the last apply: its tallies and a gauge delta.

    Call :meth:`touched` after each update: it applies at once outside a loop,
    else arms the timer. ``busy`` is the change of the busy-slots gauge.
    """

    def __init__(self, busy_gauge: Any) -> None:
        self._busy_inc = _value_inc(busy_gauge)
        self.busy = 0
        self._tallies: list[SeriesTally] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        _LIVE.add(self)

    def add(self, tally: SeriesTally) -> SeriesTally:
        self._tallies.append(tally)
        return tally

    def touched(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.apply()
            return
        self._loop, self._thread = loop, threading.get_ident()
        self._timer = loop.call_later(APPLY_DELAY_SECONDS, self.apply)

    def apply(self) -> None:
        """Apply everything recorded so far (on the recording loop's thread)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for tally in self._tallies:
            tally.apply()
        if self.busy:
            self._busy_inc(self.busy)
            self.busy = 0

    def apply_for_collect(self) -> None:
        """From any thread: have the loop apply pending updates, and wait for it."""
        loop, timer = self._loop, self._timer
        if timer is None or loop is None:
            return  # nothing pending
        if self._thread == threading.get_ident():
            self.apply()  # collected on the loop itself (an app serving /metrics there)
            return
        done = threading.Event()

        def apply_and_signal() -> None:
            try:
                self.apply()
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(apply_and_signal)
        except RuntimeError:  # the loop is closed: nothing can be pending on it
            return
        done.wait(COLLECT_WAIT_SECONDS)


_LIVE: weakref.WeakSet[MetricsBuffer] = weakref.WeakSet()


class _ApplyOnCollect(Collector):
    """Exports nothing; collecting it applies every live buffer first."""

    def collect(self) -> Iterator[Metric]:
        for buffer in list(_LIVE):
            buffer.apply_for_collect()
        return iter(())

    def describe(self) -> Iterable[Metric]:
        return ()


# Registered on import, which metrics.py does before it defines its metrics: the
# default registry collects in registration order.
REGISTRY.register(_ApplyOnCollect())
