"""``pgqueue worker``: load the app's registry, run one worker or a supervisor of several.

The command body makes the heavy imports (the worker, observability), so the rest of
the CLI starts without them.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from ..worker.config import (  # the worker's defaults only: no service is loaded
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_LOG_SUMMARY_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_POOLER,
    DEFAULT_POOLER_POLL_INTERVAL,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    POOLERS,
    QUEUE_ORDERS,
)
from .common import DSN_HELP, POOLER_HELP, require_dsn

if TYPE_CHECKING:
    from ..tasks import Registry

__all__ = ["load_registry", "register"]


def load_registry(app: str) -> Registry:
    """The Registry named by ``module:attribute`` (the current folder is importable).

    The attribute is a Registry, or a function without arguments that returns one
    (an application that builds its registry, such as ``pgqueue.contrib.django``).
    """
    import importlib
    import inspect

    from ..tasks import Registry

    module_name, _, attr = app.partition(":")
    if not module_name or not attr:
        raise click.BadParameter("use module:attribute, for example myapp.jobs:tasks",
                                 param_hint="--app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {module_name!r}: {exc}",
                                 param_hint="--app") from None
    registry = getattr(module, attr, None)
    if registry is None:
        raise click.BadParameter(f"module {module_name!r} has no attribute {attr!r}",
                                 param_hint="--app")
    if inspect.isfunction(registry) and not _required_parameters(registry):
        registry = registry()
    if not isinstance(registry, Registry):
        raise click.BadParameter(
            f"{app} is a {type(registry).__name__}, not a pgqueue.Registry "
            "(nor a function without arguments that returns one)", param_hint="--app")
    return registry


def _required_parameters(fn: Any) -> list[str]:
    import inspect

    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


class _EarlyStop:
    """SIGTERM or SIGINT before the worker's own handlers are in place: a clean stop.

    Installed first thing in ``pgqueue worker`` (and in each forked child), so a
    process stopped while it still imports the app or connects exits 0 without
    claiming anything, instead of dying of the signal. ``Worker.run`` then puts
    its own handlers in place (a second signal there ends at once).
    """

    def __init__(self) -> None:
        self.requested = False
        self._worker: Any = None

    @classmethod
    def install(cls) -> _EarlyStop:
        import signal

        early = cls()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, early._on_signal)
        return early

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self._worker is not None:
            self._worker.stop()

    def hand_to(self, worker: Any) -> None:
        """From now on a signal stops ``worker`` (at once, if one came already)."""
        self._worker = worker
        if self.requested:
            worker.stop()


def _run_worker_and_exit(worker: Any) -> None:
    """Run a worker, then exit 0 even if a plain-function handler that ignored its
    stop request still holds a thread (its job was already handed back)."""
    import logging

    from ..observability.runtime import finish_process

    worker.run()
    finish_process()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _retention(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--retention``: parsed here, so a bad value is a usage error naming the option."""
    if value is None:
        return None
    from ..errors import ConfigError
    from ..retention import parse_retention

    try:
        return parse_retention(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _queue_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if not value:
        return None
    return [q.strip() for q in value.split(",") if q.strip()]


@click.command()
@click.option("--app", required=True, envvar="PGQUEUE_APP",
              help="The task registry, as module:attribute (e.g. myapp.jobs:tasks), or a "
                   "function without arguments that returns it.")
@click.option("--queues", envvar="PGQUEUE_QUEUES", callback=_queue_list,
              help="Comma-separated queues, each optionally with its local slots "
                   "(email=10,payment=2: at most 2 payment jobs at once in this process), "
                   "a weight (critical=w6,default=w3,low=w1: claims split 6:3:1) or both "
                   "(default=10:w3); default: every queue the registry's tasks use.")
@click.option("--queue-order", envvar="PGQUEUE_QUEUE_ORDER", type=click.Choice(QUEUE_ORDERS),
              default=None,
              help="How claims share out among the queues: priority (priority, run_at, id "
                   "across them), weighted (by the queues' weights, 1 when not given) or "
                   "strict (always the first queue, in --queues order, that has a job) "
                   "[default: weighted when a weight is given, else priority].")
@click.option("--concurrency", envvar="PGQUEUE_CONCURRENCY", type=click.IntRange(1, 10_000),
              default=None, help="Jobs run at once per process [default: 10, or the sum of "
                                 "the slots when every queue has some].")
@click.option("--processes", envvar="PGQUEUE_PROCESSES", type=click.IntRange(1, 256),
              default=1, show_default=True, help="Worker processes under one supervisor.")
@click.option("--dsn", envvar="PGQUEUE_DSN", help=DSN_HELP)
@click.option("--pooler", envvar="PGQUEUE_POOLER", type=click.Choice(POOLERS),
              default=DEFAULT_POOLER, show_default=True,
              help=POOLER_HELP + " With transaction the worker LISTENs only on --listen-dsn, "
                   "else it polls.")
@click.option("--listen-dsn", envvar="PGQUEUE_LISTEN_DSN",
              help="A direct connection string (past the pooler) for the worker's LISTEN "
                   "[default: --dsn; none with --pooler transaction].")
@click.option("--poll-interval", envvar="PGQUEUE_POLL_INTERVAL", type=float, default=None,
              help=f"Seconds between claims when no notification comes [default: "
                   f"{DEFAULT_POLL_INTERVAL:g}; {DEFAULT_POOLER_POLL_INTERVAL:g} with "
                   "--pooler transaction and no --listen-dsn].")
@click.option("--heartbeat-interval", envvar="PGQUEUE_HEARTBEAT_INTERVAL", type=float,
              default=DEFAULT_HEARTBEAT_INTERVAL, show_default=True,
              help="Seconds between heartbeats.")
@click.option("--stall-timeout", envvar="PGQUEUE_STALL_TIMEOUT", type=float,
              default=DEFAULT_STALL_TIMEOUT, show_default=True,
              help="Reclaim running jobs whose heartbeat is older.")
@click.option("--shutdown-timeout", envvar="PGQUEUE_SHUTDOWN_TIMEOUT", type=float,
              default=DEFAULT_SHUTDOWN_TIMEOUT, show_default=True,
              help="Grace period for running jobs on SIGTERM.")
@click.option("--startup-timeout", envvar="PGQUEUE_STARTUP_TIMEOUT", type=float,
              default=DEFAULT_STARTUP_TIMEOUT, show_default=True,
              help="Exit non-zero when no database connection succeeded within this many "
                   "seconds of start (a database lost later is waited for).")
@click.option("--retention", envvar="PGQUEUE_RETENTION", callback=_retention,
              metavar="STATE=AGE,...|off",
              help="How long history keeps finished jobs, by final state; the leader "
                   "deletes older ones: e.g. succeeded=12h,failed=90d (states not named "
                   "keep their default), failed=off (for ever), or off (keep everything). "
                   "Ages take a unit: 30m, 12h, 7d, 2w; at least 1m. Queues override it "
                   "with 'pgqueue queue retention'. [default: succeeded=1d,cancelled=7d,"
                   "failed=30d]")
@click.option("--log-level", envvar="PGQUEUE_LOG_LEVEL", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@click.option("--log-format", envvar="PGQUEUE_LOG_FORMAT", default="text", show_default=True,
              type=click.Choice(["text", "json"]))
@click.option("--log-summary-interval", envvar="PGQUEUE_LOG_SUMMARY_INTERVAL",
              type=click.FloatRange(min=0), default=DEFAULT_LOG_SUMMARY_INTERVAL,
              show_default=True,
              help="Seconds between the INFO lines that count finished jobs per queue; "
                   "0: none. Each succeeded job gets a line of its own only at "
                   "--log-level debug; retries and failures always do.")
@click.option("--transaction-pool-size", envvar="PGQUEUE_TRANSACTION_POOL_SIZE",
              type=click.IntRange(1, 10_000), default=None,
              help="The most connections each of the two pools behind ctx.transaction() "
                   "opens per process (async and sync handlers); opened only when a "
                   "handler asks. [default: the concurrency]")
@click.option("--metrics-port", envvar="PGQUEUE_METRICS_PORT", type=click.IntRange(0, 65535),
              default=2112, show_default=True,
              help="Serve Prometheus /metrics on this port (all processes summed); 0: off.")
@click.option("--otel-psycopg", envvar="PGQUEUE_OTEL_PSYCOPG", default="off",
              show_default=True, type=click.Choice(["off", "jobs", "all"]),
              help="OpenTelemetry spans for psycopg statements: of handlers (jobs), "
                   "also of the worker's own claims and outcome writes (all).")
def worker(app: str, queues: list[str] | None, queue_order: str | None,
           concurrency: int | None, processes: int,
           dsn: str | None, pooler: str, listen_dsn: str | None,
           poll_interval: float | None, heartbeat_interval: float,
           stall_timeout: float, shutdown_timeout: float, startup_timeout: float,
           retention: Any, log_level: str, log_format: str, log_summary_interval: float,
           transaction_pool_size: int | None, metrics_port: int,
           otel_psycopg: str) -> None:
    """Run jobs: claim, execute, retry, heartbeat, reap; stop cleanly on SIGTERM."""
    early_stop = _EarlyStop.install()
    from ..observability.logs import configure_logging
    from ..worker import Worker
    from ..worker.processes import run_processes

    configure_logging(log_level, log_format)
    registry = load_registry(app)
    options: dict[str, Any] = {
        "dsn": require_dsn(dsn), "queues": queues, "queue_order": queue_order,
        "concurrency": concurrency,
        "pooler": pooler, "listen_dsn": listen_dsn,
        "poll_interval": poll_interval, "heartbeat_interval": heartbeat_interval,
        "stall_timeout": stall_timeout, "shutdown_timeout": shutdown_timeout,
        "startup_timeout": startup_timeout, "retention": retention,
        "log_summary_interval": log_summary_interval,
        "transaction_pool_size": transaction_pool_size,
    }
    Worker(registry, **options)  # validates every option before anything starts
    from ..observability import runtime

    if processes == 1:
        runtime.prepare_process(otel_psycopg)
        single = Worker(registry, **options, metrics_port=metrics_port or None)
        early_stop.hand_to(single)
        _run_worker_and_exit(single)
    if early_stop.requested:  # stopped before any child was forked
        sys.exit(0)
    # N processes: one endpoint in the supervisor sums the children's metric files.
    endpoint = runtime.serve_all_processes(metrics_port) if metrics_port else None

    def child() -> None:
        child_stop = _EarlyStop.install()
        configure_logging(log_level, log_format)
        runtime.prepare_process(otel_psycopg)
        child_worker = Worker(registry, **options)
        child_stop.hand_to(child_worker)
        if endpoint is not None:
            from ..observability.metrics import WorkerMetrics

            child_worker.subscribe(WorkerMetrics(options["dsn"]))
        _run_worker_and_exit(child_worker)

    try:
        code = run_processes(processes, child)
    finally:
        if endpoint is not None:
            endpoint.close()
    sys.exit(code)


def register(main: click.Group) -> None:
    """Add ``pgqueue worker`` to the ``pgqueue`` group (idempotent)."""
    if worker.name not in main.commands:
        main.add_command(worker)
