"""Drain figures: how fast one worker empties a queue of ready no-op jobs.

In process (``drain_<kind>_c<concurrency>``): N ready jobs are inserted, then one
:class:`pgqueue.Worker` (``log_events=False``) is started; the figure is N over
the time from its first JobStarted to its N-th JobFinished (outcome written).

As processes (``drain_processes<P>_c50``): ``pgqueue worker --processes P`` runs
as a subprocess on this module's ``tasks``; the figure is N over
``max(finished_at) - min(started_at)`` of the history rows.

Every figure counts only once all N jobs are in history as succeeded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

import pgqueue

from .harness import (
    BenchmarkError,
    Results,
    Sizes,
    WorkerRun,
    backend_cpu_seconds,
    count_finished,
    insert_ready_jobs,
    process_cpu_seconds,
    scratch_database,
    verify_drained,
    wait_sessions_closed,
    xact_commits,
)


async def noop_async(n: int = 0) -> None:
    return None


def noop_sync(n: int = 0) -> None:
    return None


async def sleep_10ms(n: int = 0) -> None:
    await asyncio.sleep(0.01)


tasks = pgqueue.Registry()
tasks.task(noop_async, name="bench.noop_async")
tasks.task(noop_sync, name="bench.noop_sync")
tasks.task(sleep_10ms, name="bench.sleep_10ms")


KINDS = {"async": "bench.noop_async", "sync": "bench.noop_sync",
         "sleep10ms": "bench.sleep_10ms"}
CASES = [("async", 10), ("async", 50), ("sync", 10), ("sync", 50),
         ("sleep10ms", 10), ("sleep10ms", 50)]
PROCESS_CONCURRENCY = 50
ROOT = Path(__file__).resolve().parent.parent


def _timeout(n: int) -> float:
    return 60.0 + n / 100


def drain_once(server_dsn: str, kind: str, concurrency: int, n: int, results: Results,
               *, details: bool = False, quiet: bool = False,
               history_clock: bool = False,
               worker_dsn: Callable[[str], str] | None = None,
               counters: dict[str, float] | None = None) -> tuple[float, float]:
    """Drain ``n`` jobs with one worker in process: its jobs per second, and the
    CPU seconds this process used from the worker's start until the ``n``-th outcome.

    ``quiet``: record no figure. ``history_clock``: time by the history rows'
    timestamps (as :func:`cli_drain`'s figures are) instead of the worker's events.
    ``worker_dsn``: maps the scratch database's DSN to the one the worker uses
    (through a proxy, say); the setup and checks connect directly. ``counters``:
    filled with what the details record, per job: ``python_cpu_us``,
    ``postgres_cpu_us`` (when known) and ``commits``.
    """
    with scratch_database(server_dsn, f"drain_{kind}") as dsn:
        insert_ready_jobs(dsn, KINDS[kind], n)
        commits_before = xact_commits(dsn)
        run = WorkerRun(tasks, dsn if worker_dsn is None else worker_dsn(dsn), target=n,
                        concurrency=concurrency)
        run.start()
        cpu_before = time.process_time()
        try:
            run.wait_done(_timeout(n))
            cpu_python = time.process_time() - cpu_before
            cpu_pg = backend_cpu_seconds(dsn)
        finally:
            run.stop()
        verify_drained(dsn, n)
        if run.not_succeeded:
            raise BenchmarkError(f"{run.not_succeeded} jobs did not succeed")
        wait_sessions_closed(dsn)  # a backend's counters are flushed at its exit
        commits = xact_commits(dsn) - commits_before
        rate = history_rate(dsn, n)[0] if history_clock else run.jobs_per_second()
        if counters is not None:
            counters["python_cpu_us"] = cpu_python / n * 1e6
            if cpu_pg is not None:
                counters["postgres_cpu_us"] = cpu_pg / n * 1e6
            counters["commits"] = commits / n
        if quiet:
            return rate, cpu_python
        name = f"drain_{kind}_c{concurrency}"
        results.add(name, rate, "jobs/s", f"{n:,} jobs, 1 worker in process")
        if details:
            results.add(f"{name}_python_cpu", cpu_python / n * 1e6, "us/job",
                        "benchmark process CPU (worker + harness)")
            if cpu_pg is not None:
                results.add(f"{name}_postgres_cpu", cpu_pg / n * 1e6, "us/job",
                            "CPU of the worker's PostgreSQL backends")
            results.add(f"{name}_commits", commits / n, "commits/job",
                        "pg_stat_database.xact_commit delta")
        return rate, cpu_python


def history_rate(dsn: str, n: int) -> tuple[float, int]:
    """``n`` over ``max(finished_at) - min(started_at)`` of the history rows, and
    how many worker ids wrote them: one clock for in-process and CLI workers."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8, "
            "count(DISTINCT worker_id) FROM pgqueue.finished_jobs").fetchone()
    assert row is not None
    seconds, workers = row
    return n / seconds, int(workers)


def free_port() -> int:
    """A TCP port free on the loopback now (for a worker's /metrics endpoint)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_drain(dsn: str, n: int, *options: str) -> float | None:
    """Run ``pgqueue worker`` on this module's ``tasks`` until ``n`` jobs succeeded.

    Returns the CPU seconds the worker process used from its registration (its
    imports and start-up left out) until the ``n``-th job was in history (None
    when unknown: no ``/proc``, or ``--processes`` above 1, whose workers are
    the children). Its log lines go to a temporary file, as they would to a file
    or a journal (a pipe nobody reads would block the worker once full).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "worker", "--app", "benchmarks.drain:tasks",
             "--dsn", dsn, *options],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True,
            start_new_session=True)

        def tail() -> str:
            log.seek(0)
            return log.read()[-2000:]

        cpu_start: float | None = None
        try:
            deadline = time.monotonic() + _timeout(n)
            while cpu_start is None and proc.poll() is None and time.monotonic() < deadline:
                if _registered(dsn):
                    cpu_start = process_cpu_seconds(proc.pid)
                    break
                time.sleep(0.01)
            while count_finished(dsn).get("succeeded", 0) < n:
                if proc.poll() is not None:
                    raise BenchmarkError(f"the worker exited early ({proc.returncode}): "
                                         f"{tail()}")
                if time.monotonic() > deadline:
                    raise BenchmarkError(f"pgqueue worker {' '.join(options)} did not "
                                         f"drain {n} jobs: {tail()}")
                time.sleep(0.02)
            cpu_end = process_cpu_seconds(proc.pid)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    verify_drained(dsn, n)
    forked = "--processes" in options and options[options.index("--processes") + 1] != "1"
    if cpu_start is None or cpu_end is None or forked:
        return None
    return cpu_end - cpu_start


def _registered(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pgqueue.workers").fetchone()
    return bool(row and row[0])


def drain_processes(server_dsn: str, processes: int, n: int, results: Results) -> float:
    with scratch_database(server_dsn, f"proc{processes}") as dsn:
        insert_ready_jobs(dsn, KINDS["async"], n)
        cli_drain(dsn, n, "--processes", str(processes),
                  "--concurrency", str(PROCESS_CONCURRENCY), "--log-level", "warning")
        rate, workers = history_rate(dsn, n)
        results.add(f"drain_processes{processes}_c{PROCESS_CONCURRENCY}", rate, "jobs/s",
                    f"{n:,} async no-op jobs, pgqueue worker subprocess, {workers} worker ids")
        return rate


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    for kind, concurrency in CASES:
        drain_once(server_dsn, kind, concurrency, sizes.drain, results,
                   details=(kind, concurrency) == ("async", 50))


def run_processes(server_dsn: str, sizes: Sizes, results: Results) -> None:
    one = drain_processes(server_dsn, 1, sizes.processes, results)
    two = drain_processes(server_dsn, 2, sizes.processes, results)
    results.add("drain_processes_ratio", two / one, "x", "--processes 2 / --processes 1")
