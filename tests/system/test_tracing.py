"""One trace from the producer's span (this process, SDK in-memory exporter) to
the consumer spans of a real `pgqueue worker` process (console exporter, set up
from OTEL_* variables), joined by the traceparent stored on the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import pgqueue
from tests.support import fetch, scalar, wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """A global SDK tracer provider for this test only (restored afterwards)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    saved = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = None, Once()
    trace.set_tracer_provider(provider)
    try:
        yield memory
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


def console_spans(text: str) -> list[dict[str, Any]]:
    """The spans ConsoleSpanExporter printed: JSON objects one after another."""
    decoder = json.JSONDecoder()
    spans, pos = [], 0
    while (start := text.find("{", pos)) != -1:
        span, pos = decoder.raw_decode(text, start)
        spans.append(span)
    return spans


def hex_id(value: int, width: int) -> str:
    return f"0x{value:0{width}x}"


def test_one_trace_from_enqueue_to_the_worker_process(
        clean_db: str, tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    with psycopg.connect(clean_db) as conn:
        job_id = pgqueue.enqueue(conn, "traced.work", queue="traced")
    (producer,) = exporter.get_finished_spans()
    ctx = producer.context
    assert (producer.name, producer.kind) == ("enqueue traced", trace.SpanKind.PRODUCER)
    assert producer.attributes is not None
    assert dict(producer.attributes) == {
        "messaging.system": "pgqueue", "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue", "messaging.destination.name": "traced",
        "pgqueue.task": "traced.work", "messaging.message.id": str(job_id)}
    assert scalar(clean_db, "SELECT trace_context FROM pgqueue.jobs") == (
        f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}")

    out = tmp_path / "spans.jsonl"
    env = {**os.environ, "PGQUEUE_DSN": clean_db, "OTEL_TRACES_EXPORTER": "console",
           "OTEL_SERVICE_NAME": "pgqueue-test-worker", "PGQUEUE_OTEL_PSYCOPG": "jobs",
           "PGQUEUE_METRICS_PORT": "0", "PYTHONUNBUFFERED": "1"}
    with out.open("w") as stdout, (tmp_path / "worker.log").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "worker", "--app", "tests.apps.traced_app:tasks",
             "--poll-interval", "0.5", "--heartbeat-interval", "0.3"],
            cwd=REPO, env=env, stdout=stdout, stderr=stderr)
        try:
            wait_until(lambda: fetch(clean_db, "SELECT state::text, attempt FROM "
                                     "pgqueue.all_jobs") == [("succeeded", 2)],
                       message="the job's second attempt succeeded")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            proc.kill()
    spans = console_spans(out.read_text())
    trace_id = hex_id(ctx.trace_id, 32)
    # Every span the worker exported belongs to this trace: its own claims,
    # heartbeats and outcome writes are not traced with --otel-psycopg=jobs.
    assert {s["context"]["trace_id"] for s in spans} == {trace_id}
    by_id = {s["context"]["span_id"]: s for s in spans}
    consumers = sorted((s for s in spans if s["kind"] == "SpanKind.CONSUMER"),
                       key=lambda s: s["attributes"]["pgqueue.attempt"])
    assert [c["name"] for c in consumers] == ["process traced"] * 2
    for attempt, consumer in enumerate(consumers, start=1):
        assert consumer["parent_id"] == hex_id(ctx.span_id, 16)
        assert consumer["resource"]["attributes"]["service.name"] == "pgqueue-test-worker"
        attributes = consumer["attributes"]
        assert attributes["messaging.system"] == "pgqueue"
        assert attributes["messaging.destination.name"] == "traced"
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.message.id"] == str(job_id)
        assert attributes["pgqueue.task"] == "traced.work"
        assert attributes["pgqueue.attempt"] == attempt
    first, second = consumers
    assert first["attributes"]["pgqueue.outcome"] == "retried"
    assert first["status"]["status_code"] == "ERROR"
    (error,) = first["events"]
    assert error["name"] == "exception"
    assert error["attributes"]["exception.type"] == "ValueError"
    assert "first attempt fails" in error["attributes"]["exception.stacktrace"]
    assert second["attributes"]["pgqueue.outcome"] == "succeeded"
    assert second["status"]["status_code"] == "UNSET"
    # The handler's own span and its query nest under the attempt (sync handler,
    # in a worker thread: the attempt's context travels with it).
    renders = [s for s in spans if s["name"] == "render"]
    assert sorted(by_id[r["parent_id"]]["attributes"]["pgqueue.attempt"]
                  for r in renders) == [1, 2]
    queries = [s for s in spans if s["kind"] == "SpanKind.CLIENT"]
    assert queries and all(by_id[q["parent_id"]]["name"] == "render" for q in queries)
    print_tree(producer, spans)


def print_tree(producer: Any, spans: list[dict[str, Any]]) -> None:
    """The trace as an indented tree (shown with pytest -s; used in the README)."""
    children: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        children.setdefault(span["parent_id"], []).append(span)

    def show(span_id: str, depth: int) -> None:
        for child in sorted(children.get(span_id, []), key=lambda s: s["start_time"]):
            attrs = child["attributes"]
            extra = " ".join(f"{k}={attrs[k]}" for k in ("pgqueue.attempt", "pgqueue.outcome")
                             if k in attrs)
            print(f"{'  ' * depth}└─ {child['name']} [{child['kind'].split('.')[-1]}] {extra}")
            show(child["context"]["span_id"], depth + 1)

    print(f"{producer.name} [PRODUCER] (test process)")
    show(hex_id(producer.context.span_id, 16), 1)


WORKER_SCRIPT = """
import asyncio, json, sys
import psycopg
import pgqueue
from pgqueue import events

dsn, tracing = sys.argv[1], sys.argv[2] == "on"
tasks = pgqueue.Registry()

@tasks.task(name="t.noop", queue="otel-check")
async def noop() -> None: ...

with psycopg.connect(dsn) as conn:
    pgqueue.enqueue(conn, "t.noop", {}, queue="otel-check")
worker = pgqueue.Worker(tasks, dsn=dsn, poll_interval=0.5, tracing=tracing)
worker.subscribe(lambda e: worker.stop() if isinstance(e, events.JobFinished) else None)
asyncio.run(worker.run_async())
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")))
"""


@pytest.mark.parametrize("tracing", ["off", "on"])
def test_a_worker_without_tracing_never_imports_opentelemetry(clean_db: str,
                                                              tracing: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", WORKER_SCRIPT, clean_db, tracing],
                          check=False, capture_output=True, text=True, timeout=60, cwd=REPO,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert fetch(clean_db, "SELECT state::text FROM pgqueue.all_jobs") == [("succeeded",)]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    if tracing == "off":
        assert loaded == []
    else:  # the check sees them when they are there
        assert "opentelemetry.trace" in loaded
