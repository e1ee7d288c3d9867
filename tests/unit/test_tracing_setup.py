"""The worker's SDK set-up follows the SDK's OTEL_* variables; the server attributes
come from the DSN. Each set-up runs in a fresh interpreter (a tracer provider is
set once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from pgqueue.observability.tracing import server_attributes
from tests.conftest import ROOT

PROBE = """
import json, logging
from opentelemetry import trace
from pgqueue.observability.tracing_setup import configure_from_env

warnings = []
class Keep(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())
logging.getLogger("pgqueue.tracing").addHandler(Keep())
done = configure_from_env()
provider = trace.get_tracer_provider()
processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())

def exporter(processor):  # SDK 1.34's batch processor has no span_exporter property
    found = getattr(processor, "span_exporter", None) or processor._batch_processor._exporter
    return type(found).__module__ + "." + type(found).__name__

print(json.dumps({
    "done": done,
    "exporters": [exporter(p) for p in processors],
    "service": provider.resource.attributes.get("service.name")
               if hasattr(provider, "resource") else None,
    "sampler": provider.sampler.get_description() if hasattr(provider, "sampler") else None,
    "warnings": warnings,
}))
"""

HTTP = "opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter"
CONSOLE = "opentelemetry.sdk.trace.export.ConsoleSpanExporter"
GRPC_INSTALLED = bool(entry_points(group="opentelemetry_traces_exporter",
                                   name="otlp_proto_grpc"))


def probe(**variables: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**env, **variables}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(GRPC_INSTALLED, reason="with the gRPC exporter the SDK defaults to it")
def test_otlp_without_a_protocol_is_otlp_over_http() -> None:
    found = probe(OTEL_TRACES_EXPORTER="otlp")
    assert (found["done"], found["exporters"], found["service"]) == (
        True, [HTTP], "pgqueue-worker")


def test_the_standard_protocol_variable_picks_the_exporter() -> None:
    found = probe(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    assert found["exporters"] == [HTTP]


def test_an_otlp_endpoint_alone_means_otlp() -> None:
    found = probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318",
                  OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    assert found["exporters"] == [HTTP]


def test_every_installed_exporter_by_its_entry_point_and_the_sdk_variables() -> None:
    found = probe(OTEL_TRACES_EXPORTER="otlp_proto_http,console",
                  OTEL_SERVICE_NAME="billing-worker", OTEL_TRACES_SAMPLER="always_off")
    assert found["exporters"] == [HTTP, CONSOLE]
    assert found["service"] == "billing-worker"
    assert found["sampler"] == "AlwaysOffSampler"  # read by the SDK


@pytest.mark.parametrize("variables", [{}, {"OTEL_TRACES_EXPORTER": "none"}])
def test_no_exporter_asked_for_sets_nothing_up(variables: dict[str, str]) -> None:
    found = probe(**variables)
    assert (found["done"], found["exporters"], found["warnings"]) == (False, [], [])


def test_an_exporter_that_is_not_installed_is_a_warning_and_no_tracing() -> None:
    found = probe(OTEL_TRACES_EXPORTER="no_such_exporter")
    assert (found["done"], found["exporters"]) == (False, [])
    assert found["warnings"] == ["OpenTelemetry set-up from OTEL_* failed; not exporting traces"]


@pytest.mark.parametrize(("dsn", "expected"), [
    ("postgresql://app:secret@db.example:6543/shop",
     {"server.address": "db.example", "server.port": 6543}),
    ("host=10.1.2.80 dbname=shop", {"server.address": "10.1.2.80", "server.port": 5432}),
    ("host=/var/run/postgresql port=5433",
     {"server.address": "/var/run/postgresql", "server.port": 5433}),
    ("hostaddr=10.1.2.81 port=6432", {"server.address": "10.1.2.81", "server.port": 6432}),
    ("host=a.example,b.example dbname=shop", {}),
    ("dbname=shop", {}),
    ("not a dsn", {}),
    (None, {}),
])
def test_server_attributes_from_the_dsn(monkeypatch: pytest.MonkeyPatch, dsn: str | None,
                                        expected: dict[str, object]) -> None:
    monkeypatch.delenv("PGHOST", raising=False)
    monkeypatch.delenv("PGPORT", raising=False)
    assert server_attributes(dsn) == expected


def test_server_attributes_read_pghost_and_pgport_as_libpq_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "db.internal")
    monkeypatch.setenv("PGPORT", "5544")
    assert server_attributes("dbname=shop") == {"server.address": "db.internal",
                                                "server.port": 5544}
