"""The fetcher alone: its ticks against a real database, time from a fake clock.

Attempts run through a stand-in attempt runner that holds each job until the
test lets it go, so what the fetcher holds is known at every step.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import events
from pgqueue.tasks import Task
from pgqueue.types import Job, JobContext
from pgqueue.worker.executor import Outcome
from pgqueue.worker.fetcher import ClaimFilter, Fetcher
from pgqueue.worker.session import Session
from pgqueue.worker.slots import Slots
from tests.conftest import dsn_for
from tests.support import fetch

POLL = 300.0  # long: a look the test did not cause would be a bug


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """A fetcher on a real claim session, its slots, and what they did."""

    def __init__(self, dsn: str, *, concurrency: int = 2, queues: tuple[str, ...] = ("fq",),
                 queue_slots: dict[str, int] | None = None, session_dsn: str | None = None
                 ) -> None:
        self.registry = pgqueue.Registry()

        @self.registry.task(name="f.work", queue="fq")
        async def work() -> None: ...

        self.clock = Clock()
        self.events: list[events.Event] = []
        self.outcomes: list[Outcome] = []
        self.release: dict[int, asyncio.Event] = {}
        self.session = Session(session_dsn or dsn, name="test-fetcher")
        self.stop = asyncio.Event()
        self.threads = ThreadPoolExecutor(max_workers=1)
        worker_id = str(uuid.uuid4())
        self.slots = Slots(
            self.registry, worker_id, concurrency=concurrency, queue_slots=queue_slots or {},
            run_attempt=self._attempt, threads=self.threads, on_outcome=self.outcomes.append,
            on_finished=self._finished,
            emit=self.events.append, stop=self.stop, stop_requested=self.stop.is_set)
        self.fetcher = Fetcher(self.session, worker_id,
                               ClaimFilter(list(queues), ["f.work"], [], []), self.slots,
                               poll_interval=POLL, emit=self.events.append, stop=self.stop,
                               clock=self.clock)

    def _finished(self, job: Job, outcome: Outcome | None) -> None:
        self.fetcher.job_finished(job, outcome)

    async def _attempt(self, task: Task, job: Job, ctx: JobContext, threads: Executor,
                       rng: random.Random | None) -> Outcome:
        gate = self.release.setdefault(job.id, asyncio.Event())
        await gate.wait()
        return Outcome(job, "succeeded", 0.001)

    @property
    def running(self) -> list[int]:
        return sorted(self.slots.running)

    @property
    def waiting(self) -> list[int]:
        return [j.id for j in self.slots.ready]

    async def finish(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            self.release.setdefault(job_id, asyncio.Event()).set()
        while any(j in self.slots.running for j in job_ids):
            await asyncio.sleep(0.001)

    async def close(self) -> None:
        self.stop.set()  # or each finished job's slot starts a waiting one, left pending
        await self.finish(list(self.slots.running))
        self.threads.shutdown()
        await self.session.close()


def drive(dsn: str, test: Callable[[Rig], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        rig = Rig(dsn, **options)
        try:
            await test(rig)
        finally:
            await rig.close()

    asyncio.run(main())


def enqueue(dsn: str, n: int, queue: str = "fq", **options: Any) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue_many(conn, [{"task": "f.work", "queue": queue, **options}] * n)


def states(dsn: str) -> dict[str, int]:
    return dict(fetch(dsn, "SELECT state::text, count(*) FROM pgqueue.jobs GROUP BY 1"))


def test_claims_its_free_slots_in_one_statement_then_sleeps_until_the_poll(
        clean_db: str) -> None:
    ids = enqueue(clean_db, 5)

    async def test(rig: Rig) -> None:
        assert await rig.fetcher.tick() is None  # claimed: look again at once
        assert rig.running == ids[:2] and rig.waiting == []
        assert states(clean_db) == {"running": 2, "queued": 3}
        pause = await rig.fetcher.tick()  # no free slot: no claim, sleep until the poll
        assert pause == POLL
        assert states(clean_db) == {"running": 2, "queued": 3}
        await rig.finish(ids[:1])  # a slot frees: look again, claim one
        assert await rig.fetcher.tick() is None
        assert rig.running == ids[1:3]
        assert [o.job.id for o in rig.outcomes] == ids[:1]

    drive(clean_db, test)


def test_sleeps_exactly_until_the_next_run_at_and_claims_it_then(clean_db: str) -> None:
    (later,) = enqueue(clean_db, 1, delay=30)

    async def test(rig: Rig) -> None:
        pause = await rig.fetcher.tick()
        assert pause is not None and 29 < pause <= 30  # not the 300 s poll
        assert rig.running == []
        # Due in the database now; but the fetcher does not look before its time.
        fetch(clean_db, "UPDATE pgqueue.jobs SET run_at = now() RETURNING id")
        rig.clock.now += pause / 2
        rest = await rig.fetcher.tick()
        assert rest == pytest.approx(pause / 2)
        assert rig.running == []
        rig.clock.now += rest + 1e-6
        assert await rig.fetcher.tick() is None
        assert rig.running == [later]

    drive(clean_db, test)


def test_a_poke_makes_it_look_before_the_poll(clean_db: str) -> None:
    async def test(rig: Rig) -> None:
        assert await rig.fetcher.tick() == POLL  # nothing to claim
        (job,) = enqueue(clean_db, 1)
        assert await rig.fetcher.tick() == POLL  # no reason to look yet
        assert rig.running == []
        rig.fetcher.poke()  # a notification
        assert await rig.fetcher.tick() is None
        assert rig.running == [job]

    drive(clean_db, test)


def test_local_slots_cap_a_queue_and_the_claim(clean_db: str) -> None:
    capped = enqueue(clean_db, 3, queue="fa")
    free = enqueue(clean_db, 3, queue="fb")

    async def test(rig: Rig) -> None:
        assert await rig.fetcher.tick() is None
        held = rig.running + rig.waiting
        assert len(held) == 4
        assert sum(j in capped for j in held) == 1  # queue fa: one local slot
        assert states(clean_db) == {"running": 4, "queued": 2}
        assert set(rig.running) <= set(capped + free)

    drive(clean_db, test, concurrency=4, queues=("fa", "fb"), queue_slots={"fa": 1})


def test_short_jobs_prefetch_up_to_four_times_its_slots(clean_db: str) -> None:
    ids = enqueue(clean_db, 12)

    async def test(rig: Rig) -> None:
        assert await rig.fetcher.tick() is None
        await rig.finish(rig.running)  # 1 ms each: the average says short jobs
        for _ in range(3):
            assert await rig.fetcher.tick() is None
            if len(rig.running) + len(rig.waiting) == 8:
                break
        assert len(rig.running) == 2 and len(rig.waiting) == 6  # 4 x concurrency held
        assert states(clean_db)["running"] == 2 + 8  # the first two: no completer here
        assert set(rig.running + rig.waiting) <= set(ids)

    drive(clean_db, test)


def test_a_lost_database_backs_off_and_is_reported_once(clean_db: str) -> None:
    async def test(rig: Rig) -> None:
        pauses = [await rig.fetcher.tick() for _ in range(4)]
        assert pauses == [0.1, 0.2, 0.4, 0.8]
        lost = [e for e in rig.events if isinstance(e, events.ConnectionLost)]
        assert [e.service for e in lost] == ["fetcher"]

    drive(clean_db, test, session_dsn=dsn_for(clean_db, port=1))


def test_run_returns_at_the_stop(clean_db: str) -> None:
    async def test(rig: Rig) -> None:
        task = asyncio.create_task(rig.fetcher.run())
        await asyncio.sleep(0.05)
        rig.stop.set()
        rig.fetcher.wake()
        await asyncio.wait_for(task, timeout=5)

    drive(clean_db, test)
