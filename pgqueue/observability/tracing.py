"""OpenTelemetry traces from the producer to the worker, through the job row.

- Producer: :func:`producer_scope` starts a PRODUCER span ("enqueue <queue>")
  around the INSERT and stores its W3C ``traceparent`` on every job it inserts
  (``pgqueue.jobs.trace_context``): the message's creation context. The jobs of
  one ``enqueue_many`` share the batch's span as their creation context (no
  per-message "create" spans). Without a configured SDK no span is made, but an
  incoming context (a valid current span) is still stored.
- Worker: :func:`traced_attempts` wraps the executor's attempt runner (the
  worker's assembler passes the wrapper to its slots; the services never import
  this module, and a worker without tracing never imports OpenTelemetry): each
  attempt runs in a CONSUMER span ("process <queue>") whose parent is the
  job's creation context and which also links to it (the messaging conventions'
  link), current for the handler (also in the worker's threads), with the
  messaging and server attributes, pgqueue's own under ``messaging.pgqueue.*``,
  and a failure as ``error.type``, an ``exception`` event and status ERROR.
- Only the API is needed at runtime; :mod:`.tracing_setup` sets up the SDK for
  the ``pgqueue worker`` command.

Invariant: with no SDK configured, tracing costs a type check per call.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import trace

from ..producer.hooks import EnqueueScope

if TYPE_CHECKING:  # enqueue-only processes load this module: keep the worker out of it
    import random

    from ..producer.params import NewJob
    from ..tasks import Task
    from ..types import Job, JobContext
    from ..worker.executor import AttemptRunner, Outcome

__all__ = [
    "instrument_psycopg",
    "producer_scope",
    "server_attributes",
    "suppress_worker_queries",
    "traced_attempts",
]

logger = logging.getLogger("pgqueue.tracing")

T = TypeVar("T")

SYSTEM = "pgqueue"
OWN = "messaging.pgqueue."  # the prefix of pgqueue's own attributes
_SUPPRESS_PLAIN_KEY = "suppress_instrumentation"  # read by OpenTelemetry instrumentations
_cache: list[tuple[Any, Any]] = []  # (provider, its pgqueue tracer)
_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def _tracer() -> Any:
    """pgqueue's tracer from the configured provider, or None when no SDK is set up."""
    if _cache and _cache[0][0] is getattr(trace, "_TRACER_PROVIDER", None):
        return _cache[0][1]  # set once per process: the common case after the first call
    if getattr(trace, "_TRACER_PROVIDER", 0) is None and not _PROVIDER_FROM_ENV:
        return None  # nothing set: skips get_tracer_provider's environment lookup
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    from .. import __version__

    tracer = provider.get_tracer("pgqueue", __version__)
    _cache[:] = [(provider, tracer)]
    return tracer


def _traceparent(span_context: Any) -> str | None:
    if not span_context.is_valid:
        return None
    return (f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
            f"{int(span_context.trace_flags):02x}")


# --- producer ------------------------------------------------------------------------


class _ProducerScope(EnqueueScope):
    __slots__ = ("_span", "_use")

    def __init__(self, jobs: list[NewJob], span: Any) -> None:
        super().__init__(jobs)
        self._span = span
        self._use = trace.use_span(span, end_on_exit=True, record_exception=True,
                                   set_status_on_exception=True)

    def __enter__(self) -> EnqueueScope:
        self._use.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._use.__exit__(exc_type, exc, tb)

    def done(self, ids: T) -> T:
        if isinstance(ids, int):
            self._span.set_attribute("messaging.message.id", str(ids))
        return super().done(ids)


def producer_scope(jobs: list[NewJob]) -> EnqueueScope:
    """The enqueue scope with a producer span (or the caller's context) on the jobs."""
    tracer = _tracer()
    if tracer is None:
        traceparent = _traceparent(trace.get_current_span().get_span_context())
        if traceparent is not None:
            jobs = [replace(job, trace_context=traceparent) for job in jobs]
        return EnqueueScope(jobs)
    queues = {job.queue for job in jobs}
    tasks = {job.task for job in jobs}
    attributes: dict[str, Any] = {"messaging.system": SYSTEM,
                                  "messaging.operation.type": "send",
                                  "messaging.operation.name": "enqueue"}
    name = "enqueue"
    if len(queues) == 1:
        queue = next(iter(queues))
        attributes["messaging.destination.name"] = queue
        name = f"enqueue {queue}"
    if len(tasks) == 1:
        attributes[OWN + "task"] = next(iter(tasks))
    if len(jobs) > 1:
        attributes["messaging.batch.message_count"] = len(jobs)
    span = tracer.start_span(name, kind=trace.SpanKind.PRODUCER, attributes=attributes)
    traceparent = _traceparent(span.get_span_context())
    if traceparent is not None:
        jobs = [replace(job, trace_context=traceparent) for job in jobs]
    return _ProducerScope(jobs, span)


# --- worker --------------------------------------------------------------------------


class _ContextThreads(Executor):
    """Runs each call in a copy of the submitter's context (the attempt's span)."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._inner.submit(contextvars.copy_context().run, fn, *args, **kwargs)


def traced_attempts(run: AttemptRunner, *, enabled: bool = True,
                    dsn: str | None = None) -> AttemptRunner:
    """``run`` with every attempt in a consumer span (when an SDK is configured).

    ``dsn`` (the worker's) gives the spans' ``server.address`` and ``server.port``.
    """
    if not enabled:
        return run
    server = server_attributes(dsn)

    async def run_traced(task: Task, job: Job, ctx: JobContext, threads: Executor,
                         rng: random.Random | None) -> Outcome:
        tracer = _tracer()
        if tracer is None:
            return await run(task, job, ctx, threads, rng)
        from opentelemetry import context as otel_context

        base, links = _creation_context(job)
        token = otel_context.attach(base)
        try:
            with tracer.start_as_current_span(
                    f"process {job.queue}", kind=trace.SpanKind.CONSUMER, links=links,
                    attributes={**_consumer_attributes(job, ctx.worker_id), **server},
                    record_exception=False, set_status_on_exception=False) as span:
                try:
                    outcome = await run(task, job, ctx, _ContextThreads(threads), rng)
                except asyncio.CancelledError:
                    span.set_attribute(OWN + "outcome", "interrupted")
                    raise
                _annotate(span, outcome)
                return outcome
        finally:
            otel_context.detach(token)

    return run_traced


def _creation_context(job: Job) -> tuple[Any, list[Any]]:
    """The attempt's parent context and its link to the job's creation context."""
    from opentelemetry import context as otel_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    base = otel_context.get_current()
    if _suppressed(base):  # the worker's own queries are untraced; the handler's are
        base = _unsuppress(base)
    if not job.trace_context:
        return base, []
    base = TraceContextTextMapPropagator().extract({"traceparent": job.trace_context},
                                                   context=base)
    created = trace.get_current_span(base).get_span_context()
    return base, [trace.Link(created)] if created.is_valid else []


def _consumer_attributes(job: Job, worker_id: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": job.queue,
        "messaging.message.id": str(job.id),
        "messaging.client.id": worker_id,
        OWN + "task": job.task,
        OWN + "attempt": job.attempt,
        OWN + "max_attempts": job.max_attempts,
    }


def server_attributes(dsn: str | None) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of the one host ``dsn`` names, else none.

    Also reads ``PGHOST``/``PGPORT`` as libpq does; a list of hosts, a DSN without
    a host (libpq's default socket) or one libpq cannot parse gives no attributes.
    """
    if not dsn:
        return {}
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except ProgrammingError:
        return {}
    host = str(params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST", ""))
    if not host or "," in host:
        return {}
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
    return {"server.address": host, **({"server.port": int(port)} if port.isdigit() else {})}


def _annotate(span: Any, outcome: Outcome) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute(OWN + "outcome", outcome.outcome)
    if outcome.delay_seconds is not None:
        # retried or snoozed (the outcome attribute says which): due again after this
        span.set_attribute(OWN + "retry_in_seconds", outcome.delay_seconds)
    error = outcome.error
    if error is None:
        return
    message = str(error.get("message", ""))
    kind = _exception_type(error)
    attributes = {"exception.type": kind, "exception.message": message}
    if error.get("traceback"):
        attributes["exception.stacktrace"] = str(error["traceback"])
    span.add_event("exception", attributes)
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, message))


def _exception_type(error: Mapping[str, Any]) -> str:
    kind = str(error.get("kind", "error"))
    if kind in ("error", "permanent"):
        head = str(error.get("message", "")).partition(":")[0]
        if head and " " not in head:
            return head
    return {"timeout": "TimeoutError", "retry": "pgqueue.Retry",
            "bad_args": "TypeError"}.get(kind, kind)


def _suppressed(ctx: Any) -> bool:
    from opentelemetry import context as otel_context

    return bool(otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, ctx)
                or otel_context.get_value(_SUPPRESS_PLAIN_KEY, ctx))


def _unsuppress(ctx: Any) -> Any:
    from opentelemetry import context as otel_context

    ctx = otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, False, ctx)
    return otel_context.set_value(_SUPPRESS_PLAIN_KEY, False, ctx)


def suppress_worker_queries() -> None:
    """Leave the worker's own statements (claims, heartbeats, outcomes) untraced.

    Call before the worker starts, in the thread that runs it: its loop inherits
    the context, and each attempt's span lifts the suppression for its handler.
    """
    from opentelemetry import context as otel_context

    ctx = otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
    otel_context.attach(otel_context.set_value(_SUPPRESS_PLAIN_KEY, True, ctx))


def instrument_psycopg() -> None:
    """Trace psycopg statements with opentelemetry-instrumentation-psycopg."""
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    instrumentor = PsycopgInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
