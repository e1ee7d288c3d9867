"""OpenTelemetry traces from the producer to the worker, through the job row.

- Producer: :func:`producer_scope` starts a PRODUCER span ("enqueue <queue>")
  around the INSERT and stores its W3C ``traceparent`` on every job it inserts
  (``pgqueue.jobs.trace_context``). Without a configured SDK no span is made,
  but an incoming context (a valid current span) is still stored.
- Worker: :func:`traced_attempts` wraps the executor's attempt runner (the
  worker's assembler passes the wrapper to its slots; the services never import
  this module, and a worker without tracing never imports OpenTelemetry): each
  attempt runs in a CONSUMER span ("process <queue>") whose parent is the
  producer's span, current for the handler (also in the worker's threads), with
  the messaging attributes, task, attempt and outcome, and the error as an
  ``exception`` event.
- Only the API is needed at runtime. :func:`configure_from_env` sets up the SDK
  from the standard ``OTEL_*`` variables when the SDK is installed (``pgqueue[otel]``)
  and nothing configured it already (``opentelemetry-instrument`` does).

Invariant: with no SDK configured, tracing costs a type check per call.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import replace
from importlib.metadata import entry_points
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
    "configure_from_env",
    "instrument_psycopg",
    "producer_scope",
    "shutdown",
    "suppress_worker_queries",
    "traced_attempts",
]

logger = logging.getLogger("pgqueue.tracing")

T = TypeVar("T")

SYSTEM = "pgqueue"
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
        attributes["pgqueue.task"] = next(iter(tasks))
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


def traced_attempts(run: AttemptRunner, *, enabled: bool = True) -> AttemptRunner:
    """``run`` with every attempt in a consumer span (when an SDK is configured)."""
    if not enabled:
        return run

    async def run_traced(task: Task, job: Job, ctx: JobContext, threads: Executor,
                         rng: random.Random | None) -> Outcome:
        tracer = _tracer()
        if tracer is None:
            return await run(task, job, ctx, threads, rng)
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )

        base = otel_context.get_current()
        if _suppressed(base):  # the worker's own queries are untraced; the handler's are
            base = _unsuppress(base)
        if job.trace_context:
            base = TraceContextTextMapPropagator().extract(
                {"traceparent": job.trace_context}, context=base)
        token = otel_context.attach(base)
        try:
            with tracer.start_as_current_span(
                    f"process {job.queue}", kind=trace.SpanKind.CONSUMER,
                    attributes=_consumer_attributes(job), record_exception=False,
                    set_status_on_exception=False) as span:
                try:
                    outcome = await run(task, job, ctx, _ContextThreads(threads), rng)
                except asyncio.CancelledError:
                    span.set_attribute("pgqueue.outcome", "interrupted")
                    raise
                _annotate(span, outcome)
                return outcome
        finally:
            otel_context.detach(token)

    return run_traced


def _consumer_attributes(job: Job) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": job.queue,
        "messaging.message.id": str(job.id),
        "pgqueue.task": job.task,
        "pgqueue.attempt": job.attempt,
        "pgqueue.max_attempts": job.max_attempts,
    }


def _annotate(span: Any, outcome: Outcome) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("pgqueue.outcome", outcome.outcome)
    if outcome.delay_seconds is not None:
        span.set_attribute("pgqueue.retry_in_seconds", outcome.delay_seconds)
    error = outcome.error
    if error is None:
        return
    message = str(error.get("message", ""))
    attributes = {"exception.type": _exception_type(error), "exception.message": message}
    if error.get("traceback"):
        attributes["exception.stacktrace"] = str(error["traceback"])
    span.add_event("exception", attributes)
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


# --- SDK set-up for the pgqueue worker command ------------------------------------


def configure_from_env(environ: Mapping[str, str] = os.environ) -> bool:
    """Set up the SDK from ``OTEL_*`` variables; return whether this call did.

    Acts when ``OTEL_TRACES_EXPORTER`` names exporters (or an OTLP endpoint is
    set, meaning ``otlp``), no tracer provider is set yet, and the SDK is
    installed. Exporters are found by their standard entry point names
    (``console``, ``otlp``...); the resource comes from ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` (service name ``pgqueue-worker`` otherwise).
    """
    names = environ.get("OTEL_TRACES_EXPORTER")
    if names is None and (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                          or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        names = "otlp"
    wanted = [n.strip() for n in (names or "").split(",") if n.strip() and n.strip() != "none"]
    if not wanted:
        return False
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning("OTEL_TRACES_EXPORTER is set but the OpenTelemetry SDK is not "
                       "installed (pip install 'pgqueue[otel]'); not exporting traces")
        return False
    named = ("OTEL_SERVICE_NAME" in environ
             or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    provider = TracerProvider(
        resource=Resource.create({} if named else {"service.name": "pgqueue-worker"}))
    for name in wanted:
        found = list(entry_points(group="opentelemetry_traces_exporter", name=name))
        if not found:
            logger.warning("unknown OTEL_TRACES_EXPORTER; is its package installed?",
                           extra={"exporter": name})
            continue
        provider.add_span_processor(BatchSpanProcessor(found[0].load()()))
    trace.set_tracer_provider(provider)
    return True


def shutdown() -> None:
    """Flush and stop the configured tracer provider, if it can (before ``os._exit``)."""
    if "opentelemetry.trace" not in sys.modules:
        return
    from opentelemetry import trace

    stop = getattr(trace.get_tracer_provider(), "shutdown", None)
    if callable(stop):
        try:
            stop()
        except Exception:  # exporting is best effort at exit
            logger.exception("flushing traces failed")
