"""The small harness every scenario shares: sizes, scratch databases, figures, workers.

Invariants:
- every scenario runs on a database of its own, created empty, migrated with
  :func:`pgqueue.migrate` and dropped afterwards, whatever happens;
- a figure is recorded only after the scenario checked that every job it
  measured reached the expected end state (:class:`BenchmarkError` otherwise);
- nothing here asserts a speed: figures are printed and saved, never judged.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

import pgqueue
from pgqueue import events

__all__ = [
    "DEFAULT_DSN",
    "DEFAULT_OUT",
    "BenchmarkError",
    "Figure",
    "Results",
    "Sizes",
    "WorkerRun",
    "backend_cpu_seconds",
    "count_finished",
    "count_live",
    "insert_ready_jobs",
    "process_cpu_seconds",
    "scratch_database",
    "sizes_for",
    "verify_drained",
    "wait_sessions_closed",
    "xact_commits",
]

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchmarkError(RuntimeError):
    """A scenario did not end as expected (lost or failed jobs); its figure is void."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many jobs each scenario uses in one mode."""

    mode: str
    bulk_enqueue: int
    single_enqueue: int
    drain: int
    processes: int
    latency: int
    backlog_small: int
    backlog_large: int
    backlog_drain: int
    peers_drain: int
    peers_latency: int
    bloat: int
    stats_history: int
    retention: int
    cli_drain: int
    cli_rounds: int
    hop_drain: int
    hop_latency: int
    hop_rounds: int


_SIZES = {
    "full": Sizes("full", bulk_enqueue=100_000, single_enqueue=10_000, drain=20_000,
                  processes=20_000, latency=200, backlog_small=1_000,
                  backlog_large=1_000_000, backlog_drain=20_000, peers_drain=20_000,
                  peers_latency=200, bloat=1_000_000, stats_history=10_000_000,
                  retention=10_000_000, cli_drain=50_000, cli_rounds=3,
                  hop_drain=20_000, hop_latency=200, hop_rounds=3),
    "quick": Sizes("quick", bulk_enqueue=20_000, single_enqueue=2_000, drain=5_000,
                   processes=5_000, latency=50, backlog_small=1_000,
                   backlog_large=100_000, backlog_drain=5_000, peers_drain=2_000,
                   peers_latency=50, bloat=50_000, stats_history=200_000,
                   retention=200_000, cli_drain=10_000, cli_rounds=3,
                   hop_drain=5_000, hop_latency=50, hop_rounds=5),
    "smoke": Sizes("smoke", bulk_enqueue=300, single_enqueue=200, drain=300,
                   processes=300, latency=10, backlog_small=400,
                   backlog_large=2_000, backlog_drain=200, peers_drain=100,
                   peers_latency=3, bloat=300, stats_history=20_000,
                   retention=3_000, cli_drain=300, cli_rounds=1,
                   hop_drain=300, hop_latency=5, hop_rounds=1),
}


def sizes_for(*, quick: bool, smoke: bool) -> Sizes:
    return _SIZES["smoke" if smoke else "quick" if quick else "full"]


def _load() -> tuple[float, ...]:
    """1, 5 and 15 minute load averages: other work on the machine skews figures."""
    return tuple(os.getloadavg()) if hasattr(os, "getloadavg") else ()


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float
    unit: str
    note: str = ""

    def line(self) -> str:
        return f"{self.name} {_fmt(self.value)} {self.unit}"


@dataclass(slots=True)
class Results:
    """Figures of one run: printed as they come, summarised and saved at the end.

    ``details`` holds what is not a number, such as a query plan's summary; it is
    saved under ``"details"`` in the result file, never printed in the table.
    """

    mode: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    load_at_start: tuple[float, ...] = field(default_factory=_load)

    def add(self, name: str, value: float, unit: str, note: str = "") -> Figure:
        figure = Figure(name, float(value), unit, note)
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    def summary(self) -> str:
        width = max((len(f.name) for f in self.figures), default=10)
        lines = [f"{'figure':<{width}}  {'value':>12}  unit      note",
                 f"{'-' * width}  {'-' * 12}  --------  ----"]
        for f in self.figures:
            lines.append(f"{f.name:<{width}}  {_fmt(f.value):>12}  {f.unit:<8}  {f.note}")
        return "\n".join(lines)

    def to_json(self, server: dict[str, Any]) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "started_at": self.started_at,
            "finished_at": datetime.now(UTC).isoformat(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(terse=True),
                "pgqueue": pgqueue.__version__,
                "load_average_at_start": self.load_at_start,
                "load_average_at_end": _load(),
                "psycopg": psycopg.__version__,
                **server,
            },
            "figures": {f.name: {"value": f.value, "unit": f.unit, "note": f.note}
                        for f in self.figures},
            "details": self.details,
        }

    def write(self, path: Path, server: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(server), indent=2) + "\n")


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def server_facts(dsn: str) -> dict[str, Any]:
    """What the result file records about the PostgreSQL server."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
    return {"postgres": version[0] if version else None,
            "synchronous_commit": sync[0] if sync else None}


# --- databases --------------------------------------------------------------------


@contextmanager
def scratch_database(server_dsn: str, label: str, *, migrate: bool = True) -> Iterator[str]:
    """A fresh database migrated with pgqueue.migrate (unless not ``migrate``); dropped at exit."""
    name = f"pgqueue_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = conninfo.make_conninfo(server_dsn, dbname=name)
    try:
        if migrate:
            with psycopg.connect(dsn, autocommit=True) as conn:
                pgqueue.migrate(conn)
        yield dsn
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def insert_ready_jobs(dsn: str, task: str, count: int, queue: str = "default") -> None:
    """Insert ``count`` ready jobs in one statement (fast: no per-row round trip)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.jobs (task, queue, args) "
            "SELECT %s, %s, jsonb_build_object('n', g) FROM generate_series(1, %s) g",
            (task, queue, count))
        conn.execute("VACUUM ANALYZE pgqueue.jobs")


def count_live(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
    return int(row[0]) if row else 0


def count_finished(dsn: str) -> dict[str, int]:
    """Jobs in history by final state."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT state::text, count(*) FROM pgqueue.finished_jobs GROUP BY 1").fetchall()
    return {state: int(n) for state, n in rows}


def verify_drained(dsn: str, expected: int) -> None:
    """Every one of ``expected`` jobs succeeded exactly once and nothing is left."""
    live = count_live(dsn)
    finished = count_finished(dsn)
    if live or finished.get("succeeded", 0) != expected or sum(finished.values()) != expected:
        raise BenchmarkError(f"expected {expected} succeeded jobs and none live; found "
                             f"{finished} finished and {live} live")


def xact_commits(dsn: str) -> int:
    """Transactions committed in this database so far (pg_stat_database, lags a little)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def wait_sessions_closed(dsn: str, application_prefix: str = "pgqueue-",
                         timeout: float = 10.0) -> None:
    """Wait until no pgqueue session is connected to this database."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE %s", (application_prefix + "%",)).fetchone()
            if row and row[0] == 0:
                return
            time.sleep(0.05)


def backend_cpu_seconds(dsn: str, application_prefix: str = "pgqueue-") -> float | None:
    """CPU seconds used so far by this database's backends serving pgqueue sessions.

    Reads ``/proc/<pid>/stat`` of each backend, so only works when PostgreSQL runs
    on this host (None otherwise).
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE %s", (application_prefix + "%",)).fetchall()]
    total = 0.0
    for pid in pids:
        seconds = process_cpu_seconds(pid)
        if seconds is None:
            return None
        total += seconds
    return total


def process_cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of a process on this host so far (None: unknown)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


# --- an in-process worker ------------------------------------------------------------


class WorkerRun:
    """A pgqueue.Worker on its own thread and loop, timed through its events.

    ``first_start`` is the perf_counter of the first JobStarted, ``last_finish``
    of the latest JobFinished; ``done`` is set once ``target`` outcomes were written.
    """

    def __init__(self, registry: pgqueue.Registry, dsn: str, *, target: int,
                 **options: Any) -> None:
        settings: dict[str, Any] = {"log_events": False, "poll_interval": 5.0,
                                    "shutdown_timeout": 10.0, **options}
        self.worker = pgqueue.Worker(registry, dsn=dsn, **settings)
        self.target = target
        self.started = 0
        self.finished = 0
        self.not_succeeded = 0
        self.first_start: float | None = None
        self.last_finish: float | None = None
        self.target_finish: float | None = None
        self.ready = threading.Event()
        self.done = threading.Event()
        self._errors: list[BaseException] = []
        self._thread: threading.Thread | None = None
        self.worker.subscribe(self._on_event)
        self.on_finish: Callable[[events.JobFinished], None] | None = None
        self.before_run: Callable[[], None] | None = None  # on the worker's thread

    def _on_event(self, event: events.Event) -> None:
        if isinstance(event, events.JobStarted):
            if self.first_start is None:
                self.first_start = time.perf_counter()
            self.started += 1
        elif isinstance(event, events.JobFinished):
            self.last_finish = time.perf_counter()
            self.finished += 1
            if event.outcome != "succeeded":
                self.not_succeeded += 1
            if self.on_finish is not None:
                self.on_finish(event)
            if self.finished == self.target:
                self.target_finish = self.last_finish
                self.done.set()
        elif isinstance(event, events.WorkerStarted):
            self.ready.set()

    def start(self) -> None:
        def target() -> None:
            try:
                if self.before_run is not None:
                    self.before_run()
                asyncio.run(self.worker.run_async())
            except BaseException as exc:
                self._errors.append(exc)
            finally:
                self.ready.set()
                self.done.set()

        self._thread = threading.Thread(target=target, name="bench-worker", daemon=True)
        self._thread.start()
        self.ready.wait(60)
        self._raise()

    def wait_done(self, timeout: float) -> None:
        if not self.done.wait(timeout):
            raise BenchmarkError(f"worker wrote {self.finished} of {self.target} outcomes "
                                 f"within {timeout:.0f} s")
        self._raise()

    def stop(self) -> None:
        self.worker.stop()
        if self._thread is not None:
            self._thread.join(60)
            if self._thread.is_alive():
                raise BenchmarkError("the worker did not stop within 60 s")
        self._raise()

    def run_in_main_thread(self, timeout: float,
                           before_stop: Callable[[], None] | None = None) -> None:
        """Run the worker on this thread until ``target`` outcomes (for profilers).

        ``before_stop`` runs once the target is reached, while the worker's
        sessions are still open (to read their backends' counters).
        """
        async def main() -> None:
            runner = asyncio.create_task(self.worker.run_async())
            deadline = time.monotonic() + timeout
            while not self.done.is_set() and not runner.done():
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            if before_stop is not None:
                before_stop()
            self.worker.stop()
            await runner

        asyncio.run(main())
        if self.finished < self.target:
            raise BenchmarkError(f"worker wrote {self.finished} of {self.target} outcomes")

    def jobs_per_second(self) -> float:
        """``target`` jobs over first start to the target-th outcome written."""
        if self.first_start is None or self.target_finish is None:
            raise BenchmarkError("the worker did not reach its target")
        return self.target / (self.target_finish - self.first_start)

    def _raise(self) -> None:
        if self._errors:
            raise BenchmarkError(f"the worker crashed: {self._errors[0]!r}") from self._errors[0]
