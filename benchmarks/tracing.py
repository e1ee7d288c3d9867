"""What tracing costs in drain throughput: consumer spans, and the worker's own statements.

One worker in process drains N ready no-op async jobs at concurrency 50 in each
configuration; the configurations alternate over ``rounds`` in one run and the
best round of each counts, so slow moments of the machine hit all alike. An SDK
tracer provider with a batch span processor and an exporter that drops what it
gets is set up once (the cost of encoding and sending depends on the exporter
and comes on top, on the processor's thread):

- ``off``: ``Worker(tracing=False)``: no spans;
- ``spans``: a CONSUMER span per attempt (the default with an SDK);
- ``jobs``: also psycopg instrumented with the worker's own statements left
  untraced (``--otel-psycopg jobs``; no-op handlers run no statements);
- ``all``: also a span for every claim, heartbeat and outcome write of the worker
  (``--otel-psycopg all``).

Run: ``python -m benchmarks.tracing [--jobs N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import pgqueue
from pgqueue.observability import tracing

from .harness import (
    DEFAULT_DSN,
    BenchmarkError,
    Results,
    Sizes,
    WorkerRun,
    insert_ready_jobs,
    scratch_database,
    sizes_for,
    verify_drained,
)


async def noop(n: int = 0) -> None:
    return None


tasks = pgqueue.Registry()
tasks.task(noop, name="bench.noop_async")

CONFIGS = ("off", "spans", "jobs", "all")


class Dropping(SpanExporter):
    """Counts the spans it is given and keeps none."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def _drain(server_dsn: str, config: str, n: int, exporter: Dropping) -> tuple[float, int]:
    """Jobs per second and spans exported while draining ``n`` jobs in ``config``."""
    with scratch_database(server_dsn, f"tracing_{config}") as dsn:
        insert_ready_jobs(dsn, "bench.noop_async", n)
        instrumentor = PsycopgInstrumentor()
        if config in ("jobs", "all"):
            instrumentor.instrument()
        provider: Any = trace.get_tracer_provider()
        provider.force_flush()
        before = exporter.spans
        run = WorkerRun(tasks, dsn, target=n, concurrency=50, tracing=config != "off")
        if config == "jobs":
            run.before_run = tracing.suppress_worker_queries
        try:
            run.start()
            try:
                run.wait_done(120 + n / 100)
            finally:
                run.stop()
        finally:
            if config in ("jobs", "all"):
                instrumentor.uninstrument()
        provider.force_flush()
        verify_drained(dsn, n)
        if run.not_succeeded:
            raise BenchmarkError(f"{run.not_succeeded} jobs did not succeed")
        return run.jobs_per_second(), exporter.spans - before


def run(server_dsn: str, sizes: Sizes, results: Results, rounds: int = 2) -> None:
    n = sizes.drain
    exporter = Dropping()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    best = dict.fromkeys(CONFIGS, 0.0)
    spans = dict.fromkeys(CONFIGS, 0)
    for _ in range(rounds):
        for config in CONFIGS:
            rate, exported = _drain(server_dsn, config, n, exporter)
            best[config] = max(best[config], rate)
            spans[config] = exported
    provider.shutdown()
    results.add("tracing_off_c50", best["off"], "jobs/s", f"{n:,} jobs, no spans")
    for config in CONFIGS[1:]:
        results.add(f"tracing_{config}_c50", best[config], "jobs/s",
                    f"{n:,} jobs, {spans[config]:,} spans in the last round")
        results.add(f"tracing_{config}_ratio", best[config] / best["off"], "x",
                    f"{config} / off, same run")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    results = Results(mode="tracing")
    sizes = dataclasses.replace(sizes_for(quick=True, smoke=False), drain=args.jobs)
    run(args.dsn, sizes, results, rounds=args.rounds)
    print(results.summary())


if __name__ == "__main__":
    main()
