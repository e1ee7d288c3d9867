"""Run one attempt of one job and turn what happened into an :class:`Outcome`.

``async def`` handlers run on the event loop, plain functions in the worker's
thread pool. A timeout cancels an async handler; a sync handler cannot be
killed, so its attempt is recorded as timed out, its context asks it to stop,
and whatever it returns later is ignored.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import random
import time
import traceback
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from ..errors import PermanentError, Retry, Snooze
from ..tasks import Task
from ..types import Job, JobContext

__all__ = ["AttemptRunner", "Outcome", "cancelled", "run_attempt", "with_updates"]

_MESSAGE_MAX = 2000
_TRACEBACK_MAX = 8000


@dataclass(slots=True)
class Outcome:
    """What one attempt ended in, ready for the completer (read-only by convention:
    a frozen dataclass costs 1 µs more to build, once per job)."""

    job: Job
    outcome: str  # succeeded | retried | snoozed | failed | cancelled
    duration_seconds: float
    delay_seconds: float | None = None  # retried, snoozed: due again after this long
    error: dict[str, Any] | None = None
    result_json: str | None = None
    # Set when what is stored differs from what the handler produced (a result
    # that is not JSON, text PostgreSQL cannot store): says what was changed.
    note: str | None = None
    # snoozed: the task's max_snoozes; past it the write fails the job instead.
    max_snoozes: int | None = None
    # What the attempt reported that was not written while it ran (the latest
    # progress, every meta key it set): written with the outcome.
    progress_json: str | None = None
    meta_json: str | None = None
    # Set when the attempt's own transaction (ctx.transaction()) settled it, so
    # the completer writes nothing: "committed" (the outcome with the handler's
    # writes), "rolled_back" (stale: the fence matched no row), "unknown" (the
    # connection failed during COMMIT). follow_up: the committed job has
    # dependents or a batch to settle.
    written: str | None = None
    follow_up: bool = False

    @property
    def error_message(self) -> str | None:
        return None if self.error is None else str(self.error.get("message"))


AttemptRunner = Callable[[Task, Job, JobContext, Executor, "random.Random | None"],
                         Coroutine[Any, Any, Outcome]]
"""The signature of :func:`run_attempt`, and of a wrapper around it (tracing)
that the worker's assembler passes to its slots."""


async def run_attempt(task: Task, job: Job, ctx: JobContext, threads: Executor,
                      rng: random.Random | None = None) -> Outcome:
    """Run the handler for ``job`` and classify the result; the outcome carries
    what the attempt reported (progress, meta) and the worker has not written
    yet. Never raises but CancelledError.

    An attempt that opened ``ctx.transaction()`` ends it here: a success is
    written in it, fenced, and committed with the handler's writes; anything
    else rolls it back (:mod:`.transactional`)."""
    try:
        outcome = with_updates(await _attempt(task, job, ctx, threads, rng), ctx)
    except asyncio.CancelledError:
        if ctx._transaction is not None:
            await ctx._transaction.settle(None, threads, _no_fail)
        raise
    if ctx._transaction is None:
        return outcome
    ended = outcome

    def fail(exc: BaseException) -> Outcome:
        error = _error("transaction", job, "the handler returned, but its transaction "
                       f"could not commit with the outcome: {_describe(exc)}", _traceback(exc))
        retry = _retry_or_fail(task, job, ended.duration_seconds, error, None, rng)
        retry.progress_json, retry.meta_json = ended.progress_json, ended.meta_json
        return retry

    settled = await ctx._transaction.settle(outcome, threads, fail)
    assert settled is not None
    return settled


def _no_fail(exc: BaseException) -> Outcome:
    raise exc


def with_updates(outcome: Outcome, ctx: JobContext) -> Outcome:
    """``outcome`` with the attempt's unwritten reports; later ones are dropped."""
    updates = ctx.take_updates(final=True)
    if updates is not None:
        outcome.progress_json = updates.progress_json
        outcome.meta_json = updates.meta_json
    return outcome


async def _attempt(task: Task, job: Job, ctx: JobContext, threads: Executor,
                   rng: random.Random | None) -> Outcome:
    started = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - started

    try:
        kwargs = task.bind_args(_as_mapping(job.args), ctx)
    except TypeError as exc:
        return Outcome(job, "failed", elapsed(),
                       error=_error("bad_args", job, f"job args do not fit the handler: {exc}"))
    timeout = job.timeout_seconds or task.timeout
    deadline: asyncio.Timeout | None = None
    try:
        if timeout is None:  # no timer to arm: asyncio.timeout(None) costs 4 µs a job
            result = await _call(task, kwargs, threads)
        else:
            async with asyncio.timeout(timeout) as deadline:
                result = await _call(task, kwargs, threads)
    except TimeoutError as exc:
        if deadline is None or not deadline.expired():
            return _failure(task, job, exc, elapsed(), rng)
        ctx.request_stop()
        message = f"timed out after {timeout} s"
        return _retry_or_fail(task, job, elapsed(), _error("timeout", job, message), None, rng)
    except Retry as exc:
        error = _error("retry", job, f"Retry: {exc}")
        return _retry_or_fail(task, job, elapsed(), error, exc.delay, rng)
    except Snooze as exc:
        result = exc
    except PermanentError as exc:
        return Outcome(job, "failed", elapsed(), error=_error("permanent", job, _describe(exc),
                                                              _traceback(exc)))
    except Exception as exc:
        if ctx.cancel_requested:
            return cancelled(job, elapsed())
        return _failure(task, job, exc, elapsed(), rng)
    if ctx.cancel_requested:
        return cancelled(job, elapsed())
    if result is None:
        return Outcome(job, "succeeded", elapsed())
    return _returned(task, job, result, elapsed())


def _returned(task: Task, job: Job, result: Any, duration: float) -> Outcome:
    """The outcome of a handler that returned ``result`` (not None), or snoozed."""
    if isinstance(result, Snooze):
        # The cap is checked where the count is, in the outcome's write.
        return Outcome(job, "snoozed", duration, delay_seconds=result.delay,
                       max_snoozes=task.max_snoozes)
    try:
        return Outcome(job, "succeeded", duration,
                       result_json=json.dumps(result, allow_nan=False, ensure_ascii=False))
    except (TypeError, ValueError, RecursionError) as exc:
        # Not JSON: keep a readable trace of it rather than failing a successful job.
        return Outcome(job, "succeeded", duration, result_json=_repr_json(result),
                       note=f"result is not JSON ({_describe(exc)}); stored as its repr")


async def _call(task: Task, kwargs: dict[str, Any], threads: Executor) -> Any:
    if task.is_async:
        return await task.fn(**kwargs)
    return await _in_thread(threads, functools.partial(task.fn, **kwargs))


class _Results:
    """Results of handlers run in threads, handed to the event loop in bursts.

    ``loop.run_in_executor`` wakes the loop (a write to its self-pipe) once per
    call; when many short handlers finish together, one wake-up delivers them
    all. Thread-safe through the GIL: ``deque.append``/``popleft`` are atomic,
    and the loop clears ``_scheduled`` before it empties the deque, so a result
    posted meanwhile either is emptied with the others or schedules one more
    (possibly empty) delivery.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._done: collections.deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = \
            collections.deque()
        self._scheduled = False

    def post(self, future: asyncio.Future[Any], value: Any,
             error: BaseException | None) -> None:
        self._done.append((future, value, error))
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _deliver(self) -> None:
        self._scheduled = False
        done = self._done
        while done:
            future, value, error = done.popleft()
            if future.done():  # cancelled: the attempt timed out or was stopped
                continue
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)


_RESULTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Results] = \
    weakref.WeakKeyDictionary()


async def _in_thread(threads: Executor, fn: Callable[[], Any]) -> Any:
    """``await loop.run_in_executor(threads, fn)``, with results delivered in bursts."""
    loop = asyncio.get_running_loop()
    results = _RESULTS.get(loop)
    if results is None:
        results = _RESULTS[loop] = _Results(loop)
    future: asyncio.Future[Any] = loop.create_future()

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:  # handed to the awaiting attempt, as run_in_executor does
            results.post(future, None, exc)
        else:
            results.post(future, value, None)

    submitted = threads.submit(run)
    try:
        return await future
    except asyncio.CancelledError:
        submitted.cancel()  # not started yet (every thread busy): it never will be
        raise


def cancelled(job: Job, duration: float) -> Outcome:
    """The outcome of an attempt whose job was cancelled while it ran."""
    return Outcome(job, "cancelled", duration,
                   error=_error("cancelled", job, "cancelled by request"))


def _failure(task: Task, job: Job, exc: BaseException, duration: float,
             rng: random.Random | None) -> Outcome:
    error = _error("error", job, _describe(exc), _traceback(exc))
    return _retry_or_fail(task, job, duration, error, None, rng)


def _retry_or_fail(task: Task, job: Job, duration: float, error: dict[str, Any],
                   delay: float | None, rng: random.Random | None) -> Outcome:
    if job.attempt >= job.max_attempts:
        return Outcome(job, "failed", duration, error=error)
    if delay is None:
        delay = task.retry.delay(job.attempt, rng)
    return Outcome(job, "retried", duration, delay_seconds=delay, error=error)


def _as_mapping(args: Any) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise TypeError(f"args must be a JSON object, got {type(args).__name__}")
    return args


def _error(kind: str, job: Job, message: str, tb: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "kind": kind, "attempt": job.attempt, "message": message[:_MESSAGE_MAX]}
    if tb:
        error["traceback"] = tb[-_TRACEBACK_MAX:]
    return error


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not lose the outcome
        text = "<str() of the exception failed>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _repr_json(result: Any) -> str:
    try:
        text = repr(result)
    except Exception as exc:  # a broken __repr__ must not lose the outcome
        text = f"<{type(result).__name__} whose repr raised {_describe(exc)}>"
    return json.dumps({"repr": text[:_MESSAGE_MAX]}, ensure_ascii=False)
