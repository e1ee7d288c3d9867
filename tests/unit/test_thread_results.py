"""Handlers run in threads hand their results to the loop in bursts (executor._in_thread)."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pgqueue.worker.executor import _in_thread


def test_many_results_and_errors_reach_their_callers() -> None:
    def work(i: int) -> int:
        if i % 7 == 0:
            raise ValueError(f"job {i}")
        return i * 2

    async def main() -> list[object]:
        with ThreadPoolExecutor(max_workers=8) as threads:
            calls = [_in_thread(threads, functools.partial(work, i)) for i in range(500)]
            return list(await asyncio.gather(*calls, return_exceptions=True))

    results = asyncio.run(main())
    for i, result in enumerate(results):
        if i % 7 == 0:
            assert isinstance(result, ValueError) and str(result) == f"job {i}"
        else:
            assert result == i * 2


def test_a_call_cancelled_before_it_started_never_runs() -> None:
    """As with run_in_executor: a timed-out attempt still waiting for a thread
    (every thread busy) must not run later, when its outcome is long written."""
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        with ThreadPoolExecutor(max_workers=1) as threads:
            busy = asyncio.ensure_future(_in_thread(threads, lambda: release.wait(5)))
            await asyncio.sleep(0.05)  # the only thread is now busy
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_in_thread(threads, lambda: ran.append("late")), 0.05)
            release.set()
            assert await busy is True
            await asyncio.sleep(0.05)

    asyncio.run(main())
    assert ran == []


def test_a_result_after_its_caller_gave_up_is_dropped() -> None:
    """The call had started: its thread finishes, and the result goes nowhere."""
    finished = threading.Event()

    def slow() -> str:
        time.sleep(0.1)
        finished.set()
        return "ignored"

    async def main() -> None:
        with ThreadPoolExecutor(max_workers=1) as threads:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_in_thread(threads, slow), 0.02)
            assert await _in_thread(threads, lambda: "next") == "next"

    asyncio.run(main())
    assert finished.is_set()
