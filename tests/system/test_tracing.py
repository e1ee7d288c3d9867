"""One trace from the producer's span (this process, SDK in-memory exporter) to
the consumer spans of a real `pgqueue worker` process (set up from OTEL_*
variables: the console exporter, and OTLP over HTTP to a loopback receiver),
joined by the traceparent stored on the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import psycopg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once
from psycopg.conninfo import conninfo_to_dict

import pgqueue
from tests.support import fetch, scalar, wait_until
from tests.system.otlp_receiver import OtlpReceiver

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
        "messaging.pgqueue.task": "traced.work", "messaging.message.id": str(job_id)}
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
                       key=lambda s: s["attributes"]["messaging.pgqueue.attempt"])
    assert [c["name"] for c in consumers] == ["process traced"] * 2
    for attempt, consumer in enumerate(consumers, start=1):
        assert consumer["parent_id"] == hex_id(ctx.span_id, 16)
        assert [link["context"]["span_id"] for link in consumer["links"]] == [
            hex_id(ctx.span_id, 16)]
        assert consumer["resource"]["attributes"]["service.name"] == "pgqueue-test-worker"
        attributes = consumer["attributes"]
        assert attributes["messaging.system"] == "pgqueue"
        assert attributes["messaging.destination.name"] == "traced"
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.message.id"] == str(job_id)
        assert attributes["messaging.pgqueue.task"] == "traced.work"
        assert attributes["messaging.pgqueue.attempt"] == attempt
    first, second = consumers
    assert first["attributes"]["messaging.pgqueue.outcome"] == "retried"
    assert first["attributes"]["error.type"] == "ValueError"
    assert first["status"]["status_code"] == "ERROR"
    (error,) = first["events"]
    assert error["name"] == "exception"
    assert error["attributes"]["exception.type"] == "ValueError"
    assert "first attempt fails" in error["attributes"]["exception.stacktrace"]
    assert second["attributes"]["messaging.pgqueue.outcome"] == "succeeded"
    assert "error.type" not in second["attributes"]
    assert second["status"]["status_code"] == "UNSET"
    # The handler's own span and its query nest under the attempt (sync handler,
    # in a worker thread: the attempt's context travels with it).
    renders = [s for s in spans if s["name"] == "render"]
    assert sorted(by_id[r["parent_id"]]["attributes"]["messaging.pgqueue.attempt"]
                  for r in renders) == [1, 2]
    queries = [s for s in spans if s["kind"] == "SpanKind.CLIENT"]
    assert queries and all(by_id[q["parent_id"]]["name"] == "render" for q in queries)
    print_tree(producer, spans)


def otlp_worker_env(dsn: str, endpoint: str) -> dict[str, str]:
    """The README's variables for OTLP (the Python SDK would pick gRPC when installed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"PGQUEUE_DSN": dsn, "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
                "PGQUEUE_METRICS_PORT": "0"})
    if entry_points(group="opentelemetry_traces_exporter", name="otlp_proto_grpc"):
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    return env


def test_otlp_over_http_from_a_batch_enqueue(
        clean_db: str, tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    with psycopg.connect(clean_db) as conn:
        ids = pgqueue.enqueue_many(conn, [{"task": "traced.work", "queue": "traced"}] * 2)
    (producer,) = exporter.get_finished_spans()
    assert producer.attributes is not None
    assert producer.attributes["messaging.batch.message_count"] == 2
    send = (f"{producer.context.trace_id:032x}", f"{producer.context.span_id:016x}")
    with OtlpReceiver() as receiver, (tmp_path / "worker.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "worker", "--app", "tests.apps.traced_app:tasks",
             "--poll-interval", "0.5"], cwd=REPO, env=otlp_worker_env(clean_db, receiver.endpoint),
            stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: fetch(clean_db, "SELECT state::text, attempt FROM "
                                     "pgqueue.all_jobs") == [("succeeded", 2)] * 2,
                       message="both jobs' second attempts succeeded")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            proc.kill()
        spans = receiver.received()
        assert receiver.requests and not receiver.rejected
    consumers = sorted((s for s in spans if s.kind == "CONSUMER"),
                       key=lambda s: (s.attributes["messaging.message.id"],
                                      s.attributes["messaging.pgqueue.attempt"]))
    (worker_id,) = {str(w) for (w,) in fetch(clean_db, "SELECT worker_id FROM pgqueue.all_jobs")}
    server = conninfo_to_dict(clean_db)
    assert [(c.attributes["messaging.message.id"], c.attributes["messaging.pgqueue.attempt"])
            for c in consumers] == [(str(i), a) for i in sorted(ids) for a in (1, 2)]
    for consumer in consumers:
        # Parent (one trace from enqueue to every attempt) and link: both the
        # batch's send span, the creation context of each of its jobs.
        assert (consumer.trace_id, consumer.parent_span_id) == send
        assert consumer.links == [send]
        assert consumer.name == "process traced"
        assert consumer.resource["service.name"] == "pgqueue-worker"
        assert {k: consumer.attributes[k] for k in (
            "messaging.system", "messaging.operation.type", "messaging.destination.name",
            "messaging.client.id", "server.address", "server.port",
            "messaging.pgqueue.task")} == {
            "messaging.system": "pgqueue", "messaging.operation.type": "process",
            "messaging.destination.name": "traced", "messaging.client.id": worker_id,
            "server.address": server["host"], "server.port": int(server.get("port", 5432)),
            "messaging.pgqueue.task": "traced.work"}
        failed = consumer.attributes["messaging.pgqueue.attempt"] == 1
        assert consumer.attributes["messaging.pgqueue.outcome"] == (
            "retried" if failed else "succeeded")
        assert consumer.attributes.get("error.type") == ("ValueError" if failed else None)
        assert consumer.status == ("ERROR" if failed else "UNSET")
        assert [name for name, _ in consumer.events] == (["exception"] if failed else [])
    renders = [s for s in spans if s.name == "render"]
    assert sorted(r.parent_span_id for r in renders) == sorted(c.span_id for c in consumers)


def print_tree(producer: Any, spans: list[dict[str, Any]]) -> None:
    """The trace as an indented tree (shown with pytest -s; used in the README)."""
    children: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        children.setdefault(span["parent_id"], []).append(span)

    def show(span_id: str, depth: int) -> None:
        for child in sorted(children.get(span_id, []), key=lambda s: s["start_time"]):
            attrs = child["attributes"]
            extra = " ".join(f"{k}={attrs[k]}" for k in ("messaging.pgqueue.attempt",
                                                          "messaging.pgqueue.outcome")
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
