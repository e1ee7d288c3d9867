"""cancel_and_wait stops tasks that swallow a cancellation, as a service does
when its statement finishes in the same loop iteration as the cancel."""

from __future__ import annotations

import asyncio

import pytest

from pgqueue.events import Event
from pgqueue.worker.cancellation import cancel_and_wait
from pgqueue.worker.maintenance.loop import LoopConfig, run_service


async def _swallows_once(started: asyncio.Event) -> None:
    started.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        pass  # as Python 3.11's wait_for does when the inner result is ready too
    await asyncio.sleep(3600)


def test_a_task_that_swallows_the_first_cancel_keeps_a_single_cancel_waiting() -> None:
    async def main() -> bool:
        started = asyncio.Event()
        task = asyncio.create_task(_swallows_once(started))
        await started.wait()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=1.0)
        still_running = not done
        await cancel_and_wait([task])
        return still_running

    assert asyncio.run(main()), "one cancel ended the swallowing task: the test proves nothing"


def test_cancel_and_wait_ends_a_task_that_swallowed_the_first_cancel() -> None:
    async def main() -> asyncio.Task[None]:
        started = asyncio.Event()
        task = asyncio.create_task(_swallows_once(started))
        await started.wait()
        await asyncio.wait_for(cancel_and_wait([task], retry_seconds=0.05), timeout=60)
        return task

    assert asyncio.run(main()).cancelled()


class _SwallowingTick:
    """A service whose tick returns normally when cancelled mid-statement."""

    name = "swallower"

    def __init__(self) -> None:
        self.ticks = 0
        self.started = asyncio.Event()

    async def tick(self) -> float:
        self.ticks += 1
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return 0.5
        return 0.5


def test_a_service_loop_whose_tick_swallows_the_cancel_still_stops() -> None:
    events: list[Event] = []

    async def main() -> asyncio.Task[None]:
        service = _SwallowingTick()
        task = asyncio.create_task(run_service(service, worker_id="w", emit=events.append,
                                               config=LoopConfig(0.01, 0.01)))
        await service.started.wait()
        await asyncio.wait_for(cancel_and_wait([task], retry_seconds=0.05), timeout=60)
        return task

    assert asyncio.run(main()).cancelled()
    assert events == []


def test_exceptions_of_the_stopped_tasks_are_retrieved_not_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    async def main() -> asyncio.Task[None]:
        task = asyncio.create_task(fails())
        await asyncio.sleep(0)
        await cancel_and_wait([task])
        return task

    task = asyncio.run(main())
    with pytest.raises(RuntimeError, match="boom"):
        task.result()


def test_cancelled_while_stopping_its_tasks_it_still_ends_them_first() -> None:
    async def owner(started: asyncio.Event, child: list[asyncio.Task[None]]) -> None:
        task = asyncio.create_task(_swallows_once(started))
        child.append(task)
        try:
            await asyncio.sleep(3600)
        finally:
            await cancel_and_wait([task], retry_seconds=0.05)

    async def main() -> tuple[bool, bool]:
        started = asyncio.Event()
        child: list[asyncio.Task[None]] = []
        outer = asyncio.create_task(owner(started, child))
        await started.wait()
        await asyncio.wait_for(cancel_and_wait([outer], retry_seconds=0.01), timeout=60)
        return outer.cancelled(), child[0].cancelled()  # before asyncio.run cancels the rest

    assert asyncio.run(main()) == (True, True)
