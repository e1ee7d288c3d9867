"""The jobs a worker holds: running attempts and claimed jobs waiting for a slot.

Owns the worker's slots: ``concurrency`` attempts at once, and at most
``queue_slots[q]`` of a capped queue (local slots: a job whose queue is full
waits, later jobs may pass it). It starts attempts with the attempt runner it
is given (the executor's, or a wrapper around it such as tracing), hands each
outcome to the completer, cancels attempts on request and, on stop, interrupts
what still runs and says what to hand back. It uses no connection.

Invariants:
- a claimed job is held from its claim until its outcome is with the
  completer, or it is handed back: :meth:`Slots.held` lists it all along;
- an attempt emits ``JobStarted`` when it takes its slot and ``AttemptEnded``
  when it leaves it, before the next job can take the slot;
- once stopping, only the jobs of a claim that was in flight when the stop
  came (``add(..., claimed_now=True)``) still take free slots; the rest wait
  to be handed back.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import random
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass

from ..events import AttemptEnded, Event, JobStarted
from ..tasks import Registry, Task
from ..types import Job, JobContext
from .executor import AttemptRunner, Outcome, cancelled, with_updates
from .handler_pools import HandlerPools
from .transactional import HandlerTransaction

__all__ = ["Slots"]


@dataclass(slots=True)
class _Running:
    job: Job
    ctx: JobContext
    task: asyncio.Task[None]


class Slots:
    """Runs claimed jobs in this worker's slots, on the event loop.

    - ``run_attempt``: runs one attempt (:data:`~.executor.AttemptRunner`).
    - ``on_outcome``: takes each attempt's outcome (the completer's ``submit``).
    - ``on_finished(job, outcome)``: called after each attempt ends and the
      free slots are refilled (the fetcher looks again); ``outcome`` is None
      for an attempt interrupted by the stop.
    - ``stop``: set on the loop when the worker stops; ``stop_requested``: True
      as soon as a stop was asked for, from any thread.
    - ``on_report``: given each attempt's context when it reports progress or
      meta (the reporter's ``track``), from any thread.
    - ``pools``: the handler connections behind ``ctx.transaction()``.
    """

    def __init__(self, registry: Registry, worker_id: str, *, concurrency: int,
                 queue_slots: Mapping[str, int], run_attempt: AttemptRunner,
                 threads: Executor, on_outcome: Callable[[Outcome], None],
                 on_finished: Callable[[Job, Outcome | None], None],
                 emit: Callable[[Event], None], stop: asyncio.Event,
                 stop_requested: Callable[[], bool],
                 rng: random.Random | None = None,
                 on_report: Callable[[JobContext], None] | None = None,
                 pools: HandlerPools | None = None) -> None:
        self._registry = registry
        self._worker_id = worker_id
        self.concurrency = concurrency
        self.queue_slots = queue_slots
        self._run_attempt = run_attempt
        self._threads = threads
        self._on_outcome = on_outcome
        self._on_finished = on_finished
        self._emit = emit
        self._stop = stop
        self._stop_requested = stop_requested
        self._rng = rng
        self._on_report = on_report
        self._transactions = None if pools is None else functools.partial(
            HandlerTransaction, pools)
        # Read by the fetcher (sizes of claims, rooms per queue); changed here only.
        self.running: dict[int, _Running] = {}
        self.ready: collections.deque[Job] = collections.deque()

    @property
    def idle(self) -> bool:
        """Whether this worker holds no job at all."""
        return not self.running and not self.ready

    def held_by_queue(self) -> collections.Counter[str]:
        """Jobs held (running or waiting) per queue."""
        held = collections.Counter(r.job.queue for r in self.running.values())
        held.update(j.queue for j in self.ready)
        return held

    def held(self) -> list[tuple[int, int | None]]:
        """(job id, claim token) of every job held here, running first."""
        held = [(r.job.id, r.job.claim_token) for r in self.running.values()]
        held.extend((j.id, j.claim_token) for j in self.ready)
        return held

    def add(self, jobs: Iterable[Job], *, claimed_now: bool = False) -> None:
        """Take claimed jobs: start them while slots are free, keep the rest waiting."""
        self.ready.extend(jobs)
        self.fill(claimed_now=claimed_now)

    def fill(self, *, claimed_now: bool = False) -> None:
        """Start waiting jobs while slots are free (see the module's invariants)."""
        if self._stop.is_set() and not claimed_now:
            return
        caps = self.queue_slots
        if not caps:
            while self.ready and len(self.running) < self.concurrency:
                self._start(self.ready.popleft())
            return
        running_in = collections.Counter(r.job.queue for r in self.running.values())
        waiting: collections.deque[Job] = collections.deque()
        while self.ready and len(self.running) < self.concurrency:
            job = self.ready.popleft()
            cap = caps.get(job.queue)
            if cap is not None and running_in[job.queue] >= cap:
                waiting.append(job)
            else:
                running_in[job.queue] += 1
                self._start(job)
        waiting.extend(self.ready)
        self.ready = waiting

    def cancel(self, job_ids: list[int]) -> None:
        """Cancel attempts held here: waiting and async ones at once, sync ones by request."""
        for job_id in job_ids:
            waiting = next((j for j in self.ready if j.id == job_id), None)
            if waiting is not None:
                self.ready.remove(waiting)
                self._on_outcome(cancelled(waiting, 0.0))
                continue
            item = self.running.get(job_id)
            if item is None or item.ctx.cancel_requested:
                continue
            item.ctx.request_cancel()
            task = self._registry.get(item.job.task)
            if task is not None and task.is_async:
                item.task.cancel()

    async def interrupt(self, grace_seconds: float) -> list[Job]:
        """Let running attempts finish within ``grace_seconds``, then stop the rest.

        Returns the jobs to hand back: attempts interrupted before their handler
        finished, and jobs never started. A handler that finished has its outcome
        with the completer: its attempt counted.
        """
        running = [r.task for r in self.running.values()]
        stopped: list[_Running] = []
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_seconds)
            stopped = list(self.running.values())
            for item in stopped:
                item.ctx.request_stop()
                item.task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        interrupted = [r.job for r in stopped if r.task.cancelled() or not r.task.done()]
        interrupted.extend(self.ready)
        return interrupted

    def _start(self, job: Job) -> None:
        task = self._registry.get(job.task)
        ctx = JobContext(job, self._worker_id, self._on_report, self._transactions)
        assert task is not None  # the claim only takes known tasks
        runner = asyncio.create_task(self._run_job(task, job, ctx),
                                     name=f"pgqueue-job-{job.id}")
        self.running[job.id] = _Running(job, ctx, runner)
        self._emit(JobStarted(self._worker_id, job))

    async def _run_job(self, task: Task, job: Job, ctx: JobContext) -> None:
        outcome: Outcome | None = None
        started = time.perf_counter()
        try:
            outcome = await self._run_attempt(task, job, ctx, self._threads, self._rng)
        except asyncio.CancelledError:
            if not ctx.cancel_requested or self._stop_requested():
                raise  # shutdown: the job is handed back
            outcome = with_updates(cancelled(job, time.perf_counter() - started), ctx)
        finally:
            self.running.pop(job.id, None)
            self._emit(AttemptEnded(self._worker_id, job))
            if outcome is not None:
                self._on_outcome(outcome)
            self.fill()
            self._on_finished(job, outcome)
