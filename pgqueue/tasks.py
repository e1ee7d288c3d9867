"""The task registry: which functions a worker can run, and their options.

A task is a plain ``def`` (run in a thread) or an ``async def`` (run on the
event loop). It is called with the job's args as keyword arguments; a parameter
annotated :class:`pgqueue.JobContext` also receives the attempt's context.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .backoff import DEFAULT_RETRY, RetryPolicy
from .errors import InvalidJobError, TaskError
from .periodic import Schedule
from .producer.connections import AsyncHandle, SyncHandle
from .producer.enqueue import OnConflict, enqueue
from .producer.enqueue_async import enqueue_async
from .producer.params import DEFAULT_QUEUE, dump_args, validate_queue, validate_task
from .producer.tags import Tags
from .types import JobContext

__all__ = ["DEFAULT_MAX_SNOOZES", "EnqueueOptions", "Registry", "Task"]

_UNSET: Any = object()

DEFAULT_MAX_SNOOZES = 100
"""How many times a job may snooze (:class:`pgqueue.Snooze`) before its next
snooze fails it, unless its task says otherwise (``max_snoozes=``)."""


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """Options used when a task enqueues itself; see :meth:`Task.options`."""

    queue: str = DEFAULT_QUEUE
    priority: int = 0
    max_attempts: int | None = None
    run_at: datetime | None = None
    delay: timedelta | float | None = None
    unique_key: str | None = None
    expires_at: datetime | None = None
    ttl: timedelta | float | None = None
    depends_on: Iterable[int] | None = None
    concurrency_key: str | None = None
    tags: Tags | None = None
    meta: Mapping[str, Any] | None = None
    unique_for: timedelta | float | None = None
    debounce: timedelta | float | None = None
    on_conflict: OnConflict = "keep"

    def keywords(self) -> dict[str, Any]:
        """These options as the keyword arguments of :func:`pgqueue.enqueue`."""
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]

    def enqueue(self, task: Task, conn: SyncHandle,
                args: Mapping[str, Any]) -> int:
        return enqueue(conn, task.name, args, **self.keywords())

    async def enqueue_async(self, task: Task,
                            conn: AsyncHandle,
                            args: Mapping[str, Any]) -> int:
        return await enqueue_async(conn, task.name, args, **self.keywords())


@dataclass(frozen=True, slots=True)
class _KeywordFit:
    """The keyword names a handler takes, precomputed for :meth:`Task.bind_args`."""

    names: frozenset[str]
    required: frozenset[str]
    any_keyword: bool

    @classmethod
    def of(cls, signature: inspect.Signature) -> _KeywordFit | None:
        """None when a parameter is positional-only: then only bind() can tell."""
        names, required, any_keyword = set(), set(), False
        for param in signature.parameters.values():
            if param.kind is param.POSITIONAL_ONLY:
                return None
            if param.kind is param.VAR_KEYWORD:
                any_keyword = True
            elif param.kind is not param.VAR_POSITIONAL:
                names.add(param.name)
                if param.default is param.empty:
                    required.add(param.name)
        return cls(frozenset(names), frozenset(required), any_keyword)


@dataclass(frozen=True, slots=True)
class Task:
    """A registered handler with its options. Calling it calls the function."""

    name: str
    fn: Callable[..., Any]
    queue: str = DEFAULT_QUEUE
    max_attempts: int | None = None
    timeout: float | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    priority: int = 0
    is_async: bool = False
    context_param: str | None = None
    concurrency_per_key: int | None = None
    max_snoozes: int = DEFAULT_MAX_SNOOZES
    signature: inspect.Signature = field(default=None, repr=False)  # type: ignore[assignment]
    fit: _KeywordFit | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.fit is None and self.signature is not None:
            object.__setattr__(self, "fit", _KeywordFit.of(self.signature))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def defaults(self) -> EnqueueOptions:
        return EnqueueOptions(queue=self.queue, priority=self.priority,
                              max_attempts=self.max_attempts)

    def enqueue(self, conn: SyncHandle, /,
                **args: Any) -> int:
        """Enqueue this task with its defaults; keyword arguments are the job's args.

        To set options such as ``delay`` or ``unique_key``, use :meth:`options`:
        ``send_email.options(delay=60).enqueue(conn, to=...)``. Every keyword
        here is a job arg, so an arg may be called ``delay`` too.
        """
        return self.defaults.enqueue(self, conn, args)

    async def enqueue_async(self, conn: AsyncHandle, /,
                            **args: Any) -> int:
        """:meth:`enqueue` for an AsyncConnection."""
        return await self.defaults.enqueue_async(self, conn, args)

    def options(self, *, queue: str = _UNSET, priority: int = _UNSET,
                max_attempts: int | None = _UNSET, run_at: datetime | None = _UNSET,
                delay: timedelta | float | None = _UNSET,
                unique_key: str | None = _UNSET, expires_at: datetime | None = _UNSET,
                ttl: timedelta | float | None = _UNSET, depends_on: Iterable[int] | None = _UNSET,
                concurrency_key: str | None = _UNSET, tags: Tags | None = _UNSET,
                meta: Mapping[str, Any] | None = _UNSET,
                unique_for: timedelta | float | None = _UNSET,
                debounce: timedelta | float | None = _UNSET,
                on_conflict: OnConflict = _UNSET) -> BoundTask:
        """This task with some enqueue options overridden for one call."""
        given: dict[str, Any] = {k: v for k, v in {
            "queue": queue, "priority": priority, "max_attempts": max_attempts,
            "run_at": run_at, "delay": delay, "unique_key": unique_key,
            "expires_at": expires_at, "ttl": ttl, "depends_on": depends_on,
            "concurrency_key": concurrency_key, "tags": tags, "meta": meta,
            "unique_for": unique_for, "debounce": debounce, "on_conflict": on_conflict,
        }.items() if v is not _UNSET}
        return BoundTask(self, replace(self.defaults, **given))

    def bind_args(self, args: Mapping[str, Any], context: JobContext) -> dict[str, Any]:
        """Keyword arguments for the handler; raises TypeError when args do not fit."""
        kwargs = dict(args)
        if self.context_param:
            if self.context_param in kwargs:
                raise TypeError(f"job args hold {self.context_param!r}, the name of the "
                                "handler's JobContext parameter")
            kwargs[self.context_param] = context
        # Fast path: the names fit (every required one given, none unknown).
        # Signature.bind runs only on a mismatch, to raise its precise TypeError.
        fit = self.fit
        if fit is not None:
            given = kwargs.keys()
            if fit.required <= given and (fit.any_keyword or given <= fit.names):
                return kwargs
        self.signature.bind(**kwargs)
        return kwargs


@dataclass(frozen=True, slots=True)
class BoundTask:
    """A task with enqueue options set, from :meth:`Task.options`."""

    task: Task
    opts: EnqueueOptions

    def enqueue(self, conn: SyncHandle, /,
                **args: Any) -> int:
        return self.opts.enqueue(self.task, conn, args)

    async def enqueue_async(self, conn: AsyncHandle, /,
                            **args: Any) -> int:
        return await self.opts.enqueue_async(self.task, conn, args)


class Registry:
    """The tasks an application defines; a worker runs the tasks of one registry.

    Example::

        tasks = pgqueue.Registry()

        @tasks.task(name="send_email", queue="email", max_attempts=5, timeout=30)
        async def send_email(to: str, subject: str) -> None: ...
    """

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._schedules: dict[str, Schedule] = {}

    def periodic(self, cron: str, *, name: str | None = None,
                 args: Mapping[str, Any] | None = None, queue: str = DEFAULT_QUEUE,
                 on_missed: str = "skip", max_attempts: int | None = None,
                 timeout: float | None = None, retry: RetryPolicy | None = None,
                 priority: int = 0, concurrency_per_key: int | None = None,
                 max_snoozes: int = DEFAULT_MAX_SNOOZES,
                 ) -> Callable[[Callable[..., Any]], Task]:
        """Register a task that the leader enqueues on a cron schedule.

        Each tick enqueues exactly one job (with ``args``), whichever and however
        many workers run. After downtime a missed tick is skipped
        (``on_missed="skip"``, the default) or run once (``"run_once"``), never
        once per missed tick. Example::

            @tasks.periodic(cron="*/5 * * * *", name="reports.hourly")
            def refresh_reports() -> None: ...
        """
        def register(fn: Callable[..., Any]) -> Task:
            task: Task = self.task(fn, name=name, queue=queue, max_attempts=max_attempts,
                                   timeout=timeout, retry=retry, priority=priority,
                                   concurrency_per_key=concurrency_per_key,
                                   max_snoozes=max_snoozes)
            try:
                schedule = Schedule(name=task.name, cron=cron, task=task.name, queue=queue,
                                    args_json=dump_args(args), on_missed=on_missed)
            except (TaskError, InvalidJobError):
                del self._tasks[task.name]
                raise
            self._schedules[task.name] = schedule
            return task

        return register

    @property
    def schedules(self) -> list[Schedule]:
        """The periodic schedules of this registry."""
        return list(self._schedules.values())

    def task(self, fn: Callable[..., Any] | None = None, *, name: str | None = None,
             queue: str = DEFAULT_QUEUE, max_attempts: int | None = None,
             timeout: float | None = None, retry: RetryPolicy | None = None,
             priority: int = 0, concurrency_per_key: int | None = None,
             max_snoozes: int = DEFAULT_MAX_SNOOZES) -> Any:
        """Register a function as a task; usable as ``@task`` or ``@task(...)``.

        ``concurrency_per_key=N``: across every worker, at most N jobs that carry
        the same ``concurrency_key`` (given at enqueue) run at once while this
        task is claimed; running jobs of any task with that key count.

        ``max_snoozes=N`` (default 100): a job of this task may snooze
        (:class:`pgqueue.Snooze`) N times; the next snooze fails it for good.

        The name defaults to ``module.function``; give an explicit ``name`` in
        production code so renaming a module does not orphan queued jobs.
        Raises TaskError for invalid options or a name registered twice.
        """
        def register(fn: Callable[..., Any]) -> Task:
            task = _make_task(fn, name=name, queue=queue, max_attempts=max_attempts,
                              timeout=timeout, retry=retry, priority=priority,
                              concurrency_per_key=concurrency_per_key,
                              max_snoozes=max_snoozes)
            if task.name in self._tasks:
                raise TaskError(f"a task named {task.name!r} is already registered")
            self._tasks[task.name] = task
            return task

        return register(fn) if fn is not None else register

    def include(self, other: Registry, *,
                wrap: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None) -> None:
        """Add every task and periodic schedule of ``other`` to this registry.

        ``wrap(fn)``, when given, replaces each handler with what it returns (a
        function of the same kind: ``async def`` for an ``async def``), keeping
        the task's name, options and signature; a framework integration uses it
        to run code around every job. Raises TaskError when a name is already
        registered here (with the same task too: include each registry once),
        and adds nothing then.
        """
        taken = sorted(set(self._tasks) & set(other._tasks))
        if taken:
            raise TaskError(f"tasks named {', '.join(map(repr, taken))} are already registered")
        added: dict[str, Task] = {}
        for task in other:
            added[task.name] = task if wrap is None else _wrapped(task, wrap)
        self._tasks.update(added)
        self._schedules.update(other._schedules)

    def get(self, name: str) -> Task | None:
        return self._tasks.get(name)

    def __getitem__(self, name: str) -> Task:
        return self._tasks[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def names(self) -> list[str]:
        return sorted(self._tasks)

    @property
    def queues(self) -> list[str]:
        """Every queue a task of this registry uses by default."""
        return sorted({t.queue for t in self._tasks.values()})


_MAX_SNOOZES_LIMIT = 2**31 - 1  # the snoozes column is an integer


def _wrapped(task: Task, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Task:
    fn = wrap(task.fn)
    if inspect.iscoroutinefunction(fn) != task.is_async:
        raise TaskError(f"wrap() changed whether task {task.name!r} is async")
    return replace(task, fn=fn)


def _make_task(fn: Callable[..., Any], *, name: str | None, queue: str,
               max_attempts: int | None, timeout: float | None,
               retry: RetryPolicy | None, priority: int,
               concurrency_per_key: int | None = None,
               max_snoozes: int = DEFAULT_MAX_SNOOZES) -> Task:
    if not callable(fn):
        raise TaskError(f"a task must be a function, got {type(fn).__name__}")
    task_name = name or f"{fn.__module__}.{fn.__qualname__}"
    try:
        validate_task(task_name, field="task name")
        validate_queue(queue)
    except InvalidJobError as exc:
        hint = " (pass name=... for a nested or lambda function)" if name is None else ""
        raise TaskError(f"{exc}{hint}") from None
    if max_attempts is not None and (not isinstance(max_attempts, int) or max_attempts < 1):
        raise TaskError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise TaskError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise TaskError(f"retry must be a pgqueue.RetryPolicy, got {type(retry).__name__}")
    if not isinstance(priority, int) or not -1000 <= priority <= 1000:
        raise TaskError(f"priority must be an int between -1000 and 1000, got {priority!r}")
    if concurrency_per_key is not None and (
            not isinstance(concurrency_per_key, int) or isinstance(concurrency_per_key, bool)
            or concurrency_per_key < 1):
        raise TaskError(f"concurrency_per_key must be an int >= 1, got {concurrency_per_key!r}")
    if not isinstance(max_snoozes, int) or isinstance(max_snoozes, bool) \
            or not 0 <= max_snoozes <= _MAX_SNOOZES_LIMIT:
        raise TaskError(f"max_snoozes must be an int from 0 to {_MAX_SNOOZES_LIMIT}, "
                        f"got {max_snoozes!r}")
    return Task(
        name=task_name, fn=fn, queue=queue, max_attempts=max_attempts,
        timeout=float(timeout) if timeout is not None else None,
        retry=retry or DEFAULT_RETRY, priority=priority,
        is_async=inspect.iscoroutinefunction(fn),
        context_param=_context_param(fn), signature=inspect.signature(fn),
        concurrency_per_key=concurrency_per_key, max_snoozes=max_snoozes,
    )


def _context_param(fn: Callable[..., Any]) -> str | None:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to the raw text
        hints = {}
    for param in inspect.signature(fn).parameters.values():
        annotation = hints.get(param.name, param.annotation)
        if annotation is JobContext or (
            isinstance(annotation, str) and annotation.split(".")[-1] == "JobContext"
        ):
            return param.name
    return None
