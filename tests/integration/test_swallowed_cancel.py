"""A worker stops even when one of its services swallows the cancellation.

On Python 3.11 with psycopg 3.2.0 a statement that finishes in the same loop
iteration as the worker's cancel returns normally (asyncio.wait_for's race), and
the service loop goes on to its next sleep. The worker cancels again until the
service ends (pgqueue.worker.cancellation); with a single cancel it never stopped.
"""

from __future__ import annotations

import asyncio

import pytest

import pgqueue
from pgqueue.worker.maintenance.heartbeat import Heartbeat
from tests.support import running_worker


def test_a_worker_whose_heartbeat_swallows_the_cancel_still_stops(
        clean_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Heartbeat.tick
    swallowed: list[int] = []

    async def tick(self: Heartbeat) -> float:
        pause = await original(self)
        # A statement in flight when the cancels come: the first tick swallows
        # two (the two a stopping worker used to send: the gather's and its
        # own), then returns as if it had finished; later ticks are plain.
        while len(swallowed) < 2:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed.append(1)
        return pause

    monkeypatch.setattr(Heartbeat, "tick", tick)
    tasks = pgqueue.Registry()
    tasks.task(lambda: None, name="idle")
    with running_worker(clean_db, tasks) as worker:
        assert worker.of(pgqueue.events.WorkerStarted)
    assert swallowed == [1, 1]
    assert worker.of(pgqueue.events.WorkerStopped)
