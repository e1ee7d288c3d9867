"""Per-key concurrency (``concurrency_per_key``) across several workers.

pgqueue.claim takes an advisory lock per capped key and counts the running jobs
with that key afresh, so the cap holds whatever the number of workers. These
tests run several Worker instances on jobs spread over a few keys and sample
the database every few milliseconds throughout the run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.support import Inflight, RunningSampler, fetch, running_worker, scalar, wait_until


def registry(cap: int, inflight: Inflight, pause: float = 0.02) -> pgqueue.Registry:
    """'capped' (concurrency_per_key=cap) and 'free' (no cap); args carry the key."""
    tasks = pgqueue.Registry()

    async def work(key: str | None = None) -> None:
        inflight.enter(key)
        try:
            await asyncio.sleep(pause)
        finally:
            inflight.leave(key)

    tasks.task(work, name="capped", concurrency_per_key=cap)
    tasks.task(work, name="free")
    return tasks


def enqueue_keyed(dsn: str, task: str, keys: list[str | None], per_key: int) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue_many(conn, [
            {"task": task, "args": {"key": key}, "concurrency_key": key}
            for _ in range(per_key) for key in keys])


def states(dsn: str, ids: list[int]) -> Counter[str]:
    return Counter(r[0] for r in fetch(
        dsn, "SELECT state::text FROM pgqueue.finished_jobs WHERE id = ANY(%s)", [ids]))


def run_workers(dsn: str, tasks: pgqueue.Registry, workers: int, concurrency: int,
                timeout: float = 300) -> float:
    """Run ``workers`` Worker instances until no job is live; return the seconds it took."""
    began = time.monotonic()
    with ExitStack() as stack:
        for _ in range(workers):
            stack.enter_context(running_worker(dsn, tasks, concurrency=concurrency))
        wait_until(lambda: scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0,
                   timeout=timeout, message="every job finished")
    return time.monotonic() - began


@pytest.mark.parametrize("cap", [1, 2])
def test_the_cap_per_key_holds_across_four_workers(clean_db: str, cap: int) -> None:
    inflight = Inflight()
    # 100 ms each: jobs of a key claimed one after the other overlap, and the
    # sampler sees them, however slow claims and samples are on a loaded machine.
    tasks = registry(cap, inflight, pause=0.1)
    keys: list[str | None] = [f"customer-{i}" for i in range(5)]
    ids = enqueue_keyed(clean_db, "capped", keys, per_key=30)
    with RunningSampler(clean_db, "concurrency_key", interval=0.003) as sampler:
        run_workers(clean_db, tasks, workers=4, concurrency=10)
    assert states(clean_db, ids) == {"succeeded": len(ids)}
    assert sampler.samples > 100
    # Never above the cap in the database or in the handlers, and the cap was
    # reached for every key (not a cap of 1 in disguise, not starved).
    assert {k: sampler.peak[k] for k in keys} == dict.fromkeys(keys, cap), sampler.peak
    assert {k: inflight.peak[k] for k in keys} == dict.fromkeys(keys, cap), inflight.peak
    assert scalar(clean_db, "SELECT count(DISTINCT worker_id) FROM pgqueue.finished_jobs") > 1


def test_jobs_without_a_key_and_keyed_jobs_of_uncapped_tasks_are_not_limited(
        clean_db: str) -> None:
    inflight = Inflight()
    tasks = registry(1, inflight, pause=0.1)
    unkeyed = enqueue_keyed(clean_db, "capped", [None], per_key=30)
    uncapped = enqueue_keyed(clean_db, "free", ["k-free"], per_key=30)
    with RunningSampler(clean_db, "concurrency_key", interval=0.003) as sampler:
        run_workers(clean_db, tasks, workers=3, concurrency=10)
    assert states(clean_db, unkeyed + uncapped) == {"succeeded": 60}
    assert sampler.peak[None] > 3 and inflight.peak[None] > 3, sampler.peak
    assert sampler.peak["k-free"] > 3 and inflight.peak["k-free"] > 3, sampler.peak


def test_running_jobs_of_any_task_count_toward_a_key(clean_db: str) -> None:
    """Two long uncapped jobs hold key 'k': the capped task (2 per key) waits for them."""
    inflight = Inflight()
    tasks = pgqueue.Registry()
    release = threading.Event()
    order: list[str] = []

    @tasks.task(name="hold")
    def hold() -> None:
        order.append("hold")
        release.wait(120)

    @tasks.task(name="capped", concurrency_per_key=2)
    async def capped(key: str) -> None:
        order.append("capped")
        inflight.enter(key)
        # Stay until a second job of the key runs too (or 5 s pass), so the peak shows
        # what the cap lets in rather than how fast a loaded machine starts jobs.
        for _ in range(500):
            if key != "k" or inflight.now[key] >= 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        inflight.leave(key)

    with psycopg.connect(clean_db) as conn:
        holders = pgqueue.enqueue_many(conn, [{"task": "hold", "concurrency_key": "k",
                                               "priority": 10}] * 2)
    # A 60 s poll: only notifications wake the worker in time.
    with running_worker(clean_db, tasks, concurrency=10, poll_interval=60) as w:
        wait_until(lambda: order.count("hold") == 2, timeout=60)
        with psycopg.connect(clean_db) as conn:
            capped_ids = pgqueue.enqueue_many(conn, [{"task": "capped", "args": {"key": "k"},
                                                      "concurrency_key": "k"}] * 6)
            other = pgqueue.enqueue(conn, "capped", {"key": "other"}, concurrency_key="other")
        wait_until(lambda: any(e.job.id == other for e in w.finished("succeeded")), timeout=60)
        # The other key ran; key 'k' is full (2 running holders): nothing of it started.
        assert "capped" in order and inflight.peak["k"] == 0
        assert scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'queued'") == 6
        release.set()
        released = time.monotonic()
        # Finishing a keyed job wakes the workers (NOTIFY): no waiting for the poll.
        wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0,
                   timeout=120)
        assert time.monotonic() - released < 30
    assert states(clean_db, holders + capped_ids + [other]) == {"succeeded": 9}
    assert inflight.peak["k"] == 2


def test_key_cap_with_worker_processes(clean_db: str, tmp_path: Any) -> None:
    """``pgqueue worker --processes 3``: the cap holds across processes too."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent.parent
    app = tmp_path / "keyapp.py"
    app.write_text(
        "import asyncio\nimport pgqueue\ntasks = pgqueue.Registry()\n\n"
        "@tasks.task(name='keyed', concurrency_per_key=1)\n"
        "async def keyed() -> None:\n    await asyncio.sleep(0.02)\n")
    keys: list[str | None] = [f"k{i}" for i in range(4)]
    ids = enqueue_keyed(clean_db, "keyed", keys, per_key=25)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.jobs SET args = '{}'")
    with RunningSampler(clean_db, "concurrency_key", interval=0.003) as sampler:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "worker", "--app", "keyapp:tasks",
             "--dsn", clean_db, "--processes", "3", "--concurrency", "10",
             "--log-level", "warning"],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": f"{tmp_path}:{root}",
                               "PGQUEUE_METRICS_PORT": "0"})
        try:
            wait_until(lambda: scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs") == 0,
                       timeout=300, message="every job finished")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert states(clean_db, ids) == {"succeeded": 100}
    assert {k: sampler.peak[k] for k in keys} == dict.fromkeys(keys, 1), sampler.peak
    assert scalar(clean_db, "SELECT count(DISTINCT worker_id) FROM pgqueue.finished_jobs") > 1


def test_a_full_key_does_not_hold_back_other_keys(clean_db: str) -> None:
    inflight = Inflight()
    tasks = registry(1, inflight, pause=0.05)
    big = enqueue_keyed(clean_db, "capped", ["big-customer"], per_key=60)
    small = enqueue_keyed(clean_db, "capped", ["small-customer"], per_key=3)
    with running_worker(clean_db, tasks, concurrency=10) as w:
        wait_until(lambda: len({e.job.id for e in w.finished("succeeded")} & set(small)) == 3,
                   timeout=120)
        # One big-customer job runs at a time (50 ms each): most are still waiting.
        waiting = scalar(clean_db, "SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%s)", [big])
    assert waiting >= 40, waiting
