"""The OpenTelemetry SDK of a ``pgqueue worker`` process, set up from ``OTEL_*``.

The SDK's own configurator does the work (the one ``opentelemetry-instrument``
runs), so every variable it knows applies: ``OTEL_TRACES_EXPORTER`` names any
installed exporter's entry point (``otlp``, ``otlp_proto_http``, ``console``...),
``OTEL_EXPORTER_OTLP_PROTOCOL`` picks OTLP's transport, the exporters read their
endpoints, headers, timeouts and compression themselves, and the sampler, id
generator and resource come from their variables too. pgqueue adds three
defaults and nothing else:

- an OTLP endpoint without ``OTEL_TRACES_EXPORTER`` means ``otlp``;
- ``otlp`` without a protocol means ``http/protobuf`` (the specification's
  default, and the exporter of ``pgqueue[otel]``) when the gRPC exporter, which
  the Python SDK would pick, is not installed;
- the service name ``pgqueue-worker`` when none is given.

Invariant: nothing is set up when an application (or ``opentelemetry-instrument``)
already set a tracer provider, or when no traces exporter is asked for.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import entry_points
from typing import Any

__all__ = ["configure_from_env", "shutdown"]

logger = logging.getLogger("pgqueue.tracing")

SERVICE_NAME = "pgqueue-worker"
_OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_OTLP_PROTOCOLS = ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")


def configure_from_env() -> bool:
    """Set up the SDK from the process's ``OTEL_*`` variables; return whether this call did.

    A failure (an exporter that is not installed, a bad value) is logged as a
    warning and leaves tracing off: the worker runs its jobs anyway.
    """
    environ = os.environ
    if "OTEL_TRACES_EXPORTER" not in environ and any(environ.get(k) for k in _OTLP_ENDPOINTS):
        environ["OTEL_TRACES_EXPORTER"] = "otlp"
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    if not any(n and n != "none" for n in names):
        return False
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False
    try:
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator
    except ImportError:
        logger.warning("OTEL_TRACES_EXPORTER is set but the OpenTelemetry SDK is not "
                       "installed (pip install 'pgqueue[otel]'); not exporting traces")
        return False
    if "otlp" in names and not any(environ.get(k) for k in _OTLP_PROTOCOLS) \
            and not _installed("otlp_proto_grpc"):
        environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    named = ("OTEL_SERVICE_NAME" in environ
             or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    configurator: Any = _OTelSDKConfigurator  # untyped: the SDK's own env-var set-up
    try:
        configurator().configure(
            resource_attributes={} if named else {"service.name": SERVICE_NAME})
    except Exception as exc:  # the SDK raises RuntimeError/ValueError for bad settings
        logger.warning("OpenTelemetry set-up from OTEL_* failed; not exporting traces",
                       extra={"error": f"{type(exc).__name__}: {exc}"})
        return False
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _installed(exporter: str) -> bool:
    return bool(entry_points(group="opentelemetry_traces_exporter", name=exporter))


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
