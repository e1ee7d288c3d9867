"""What ``pgqueue worker`` sets up around its worker processes.

- :func:`prepare_process`: in each process that runs a worker, the OpenTelemetry
  SDK from ``OTEL_*`` (when installed) and the psycopg instrumentation mode;
- :func:`serve_all_processes`: with ``--processes N``, one ``/metrics`` endpoint
  in the supervisor summing every child (prometheus multiprocess mode). It must
  run before the children start and before prometheus_client is imported, so
  that every child writes its values to the shared folder;
- :func:`finish_process`: flush traces before the process exits.

Embedding applications do not need this module: they pass ``metrics_port`` to
:class:`~pgqueue.Worker` (or subscribe a :class:`~.metrics.WorkerMetrics`) and
configure OpenTelemetry themselves.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

__all__ = ["PSYCOPG_MODES", "AllProcesses", "finish_process", "prepare_process",
           "serve_all_processes"]

#: off: no psycopg spans; jobs: statements of handlers only; all: also the
#: worker's own claims, heartbeats and outcome writes (infrastructure spans: off
#: by default, see the README for what they cost).
PSYCOPG_MODES = ("off", "jobs", "all")


def prepare_process(otel_psycopg: str = "off") -> None:
    """Set up tracing for the worker this process will run (call before it starts)."""
    from . import tracing, tracing_setup

    tracing_setup.configure_from_env()
    if otel_psycopg != "off":
        tracing.instrument_psycopg()
        if otel_psycopg == "jobs":
            tracing.suppress_worker_queries()


def finish_process() -> None:
    """Flush spans still buffered (the worker command ends with ``os._exit``)."""
    from . import tracing_setup

    tracing_setup.shutdown()


@dataclass
class AllProcesses:
    """The supervisor's endpoint and the folder of the children's metric files."""

    server: Any
    folder: str
    owns_folder: bool

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def serve_all_processes(port: int) -> AllProcesses:
    """Turn on multiprocess mode and serve the sum of all processes on ``port``.

    Uses ``PROMETHEUS_MULTIPROC_DIR`` when set (the caller empties it between
    runs), else a temporary folder removed by :meth:`AllProcesses.close`.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    owns = not folder
    if not folder:
        folder = tempfile.mkdtemp(prefix="pgqueue-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from .metrics import serve_or_warn

    return AllProcesses(serve_or_warn(port), folder, owns)
