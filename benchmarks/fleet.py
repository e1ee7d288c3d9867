"""Many workers on one database: real ``pgqueue worker`` processes, side by side.

- ``drain``: 1, 4, 16 and 64 processes (``--concurrency 4`` each) started and
  registered first, then N ready no-op jobs inserted in one statement: the
  drain's throughput (history clock), PostgreSQL CPU per job (the pgqueue
  sessions' backends), the workers' own CPU per job, lock waits (sessions
  waiting on a lock, sampled every 20 ms: the most at once and the share of
  samples with any) and the connections in use.
- ``idle``: the 64 processes once drained, idle for a while: transactions per
  second they cost the database, the CPU of their backends and of the workers.
- ``one``: the slots of the largest fleet (64 x 4) in one process, for comparison.
- ``fanout``: what one enqueue's commit costs with 0, 10 and 100 other sessions
  listening on ``pgqueue_jobs`` (a worker's listener is one such session):
  median and 95th percentile of single enqueues, each its own commit.
- ``queues``: 1,000 queues (``--quick``: 200), one worker per 10 of them; the
  drain of N jobs dealt over every queue, and the idle transactions per second.

64 processes need more connections than a default server allows (see the
README), so by default the scenario starts its own throwaway server from the
system's PostgreSQL binaries with ``max_connections`` 400 (``pgqueue.demo``'s
embedded server: ``fsync`` and ``synchronous_commit`` off, so the figures are
about CPU and locks, not the disk); ``--dsn`` runs it on a server of your own.
Each worker runs with ``--metrics-port 0`` (processes on one host would fight
over the default port) and ``--log-level warning``.

Run: ``python -m benchmarks.fleet [--quick|--smoke] [--dsn DSN]``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg

import pgqueue
from pgqueue.demo.embedded import embedded_postgres

from .drain import KINDS, ROOT, history_rate
from .harness import (
    BenchmarkError,
    Results,
    backend_cpu_seconds,
    count_finished,
    insert_ready_jobs,
    process_cpu_seconds,
    scratch_database,
    verify_drained,
    xact_commits,
)

CONCURRENCY = 4
QUEUES_PER_WORKER = 10
SAMPLE_SECONDS = 0.02
SERVER_SETTINGS = {"max_connections": "400", "shared_buffers": "256MB"}


@dataclass(frozen=True, slots=True)
class Plan:
    processes: tuple[int, ...]
    jobs: int
    idle_seconds: float
    listeners: tuple[int, ...]
    enqueues: int
    queues: int
    queue_jobs: int


PLANS = {
    "full": Plan((1, 4, 16, 64), 20_000, 30.0, (0, 10, 100), 500, 1_000, 20_000),
    "quick": Plan((1, 4, 16, 64), 5_000, 10.0, (0, 10, 100), 200, 200, 5_000),
    "smoke": Plan((1, 2), 200, 1.0, (0, 2), 20, 20, 200),
}


# --- worker processes ---------------------------------------------------------------


class Fleet:
    """``count`` pgqueue worker processes on ``dsn``; stopped (SIGTERM, then kill) at exit."""

    def __init__(self, dsn: str, queue_sets: Sequence[str], concurrency: int = CONCURRENCY
                 ) -> None:
        self.dsn = dsn
        self._logs = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in stop)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "pgqueue", "worker", "--app", "benchmarks.drain:tasks",
                 "--dsn", dsn, "--queues", queues, "--concurrency", str(concurrency),
                 "--metrics-port", "0", "--log-level", "warning"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self._logs, text=True,
                start_new_session=True)
            for queues in queue_sets]

    def wait_registered(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while _scalar(self.dsn, "SELECT count(*) FROM pgqueue.workers") < len(self.procs):
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchmarkError(f"{len(self.procs)} workers did not all register "
                                     f"within {timeout:g} s: {self.log_tail()}")
            time.sleep(0.1)

    def check_alive(self) -> None:
        dead = [p for p in self.procs if p.poll() is not None]
        if dead:
            raise BenchmarkError(f"{len(dead)} worker(s) exited early "
                                 f"({dead[0].returncode}): {self.log_tail()}")

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(p.pid) or 0.0 for p in self.procs)

    def log_tail(self) -> str:
        self._logs.seek(0)
        return self._logs.read()[-2000:]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._logs.close()


@contextlib.contextmanager
def fleet(dsn: str, queue_sets: Sequence[str], concurrency: int = CONCURRENCY
          ) -> Iterator[Fleet]:
    running = Fleet(dsn, queue_sets, concurrency)
    try:
        running.wait_registered(timeout=60 + 3 * len(queue_sets))
        yield running
    finally:
        running.stop()


class LockSampler:
    """Samples, every SAMPLE_SECONDS on its own thread, this database's sessions
    waiting on a lock, and the connections open."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._stop = threading.Event()
        self.waiting: list[int] = []
        self.connections: list[int] = []
        self.kinds: collections.Counter[str] = collections.Counter()  # "session: lock"
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while not self._stop.wait(SAMPLE_SECONDS):
                rows = conn.execute(
                    "SELECT application_name, wait_event_type = 'Lock', wait_event "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name LIKE 'pgqueue-%'").fetchall()
                waiting = [f"{app}: {event}" for app, locked, event in rows if locked]
                self.waiting.append(len(waiting))
                self.connections.append(len(rows))
                self.kinds.update(waiting)


# --- scenarios ----------------------------------------------------------------------


def _scalar(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _wait_drained(dsn: str, n: int, workers: Fleet) -> None:
    deadline = time.monotonic() + 120 + n / 50
    while count_finished(dsn).get("succeeded", 0) < n:
        workers.check_alive()
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{len(workers.procs)} workers did not drain {n} jobs: "
                                 f"{workers.log_tail()}")
        time.sleep(0.05)


def _drain(dsn: str, workers: Fleet, n: int, insert: Sequence[tuple[str, int]]
           ) -> tuple[float, float | None, float, LockSampler]:
    """Insert the jobs, wait for the drain: (jobs/s, PostgreSQL CPU s, worker CPU s, samples)."""
    backend_before = backend_cpu_seconds(dsn)
    worker_before = workers.cpu_seconds()
    with LockSampler(dsn) as sampler:
        for queue, count in insert:
            insert_ready_jobs(dsn, KINDS["async"], count, queue=queue)
        _wait_drained(dsn, n, workers)
    backend_after = backend_cpu_seconds(dsn)
    verify_drained(dsn, n)
    rate, _ = history_rate(dsn, n)
    backend = (None if backend_before is None or backend_after is None
               else backend_after - backend_before)
    return rate, backend, workers.cpu_seconds() - worker_before, sampler


def _idle(dsn: str, workers: Fleet, seconds: float) -> tuple[float, float | None, float]:
    """(transactions/s, backend CPU share, worker CPU share) over ``seconds`` of idling."""
    commits = xact_commits(dsn)
    backend_before = backend_cpu_seconds(dsn)
    worker_before = workers.cpu_seconds()
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    time.sleep(0.6)  # pg_stat_database lags by up to half a second
    rate = (xact_commits(dsn) - commits) / elapsed
    backend_after = backend_cpu_seconds(dsn)
    backend = (None if backend_before is None or backend_after is None
               else (backend_after - backend_before) / elapsed)
    return rate, backend, (workers.cpu_seconds() - worker_before) / elapsed


def run_drain(server_dsn: str, plan: Plan, results: Results) -> None:
    for count in plan.processes:
        with scratch_database(server_dsn, f"fleet_{count}") as dsn, \
                fleet(dsn, ["default"] * count) as workers:
            rate, backend, worker, sampler = _drain(dsn, workers, plan.jobs,
                                                    [("default", plan.jobs)])
            note = f"{plan.jobs:,} no-op jobs, {count} process(es) x --concurrency {CONCURRENCY}"
            results.add(f"fleet_drain_p{count}", rate, "jobs/s", note)
            if backend is not None:
                results.add(f"fleet_pg_cpu_per_job_p{count}", backend / plan.jobs * 1e6, "us",
                            "PostgreSQL CPU of the pgqueue sessions per job")
            results.add(f"fleet_worker_cpu_per_job_p{count}", worker / plan.jobs * 1e6, "us",
                        "the worker processes' CPU per job")
            results.add(f"fleet_lock_waiters_max_p{count}", float(max(sampler.waiting, default=0)),
                        "sessions", f"most sessions waiting on a lock at once "
                        f"(every {SAMPLE_SECONDS * 1000:g} ms)")
            share = (sum(1 for w in sampler.waiting if w) / len(sampler.waiting)
                     if sampler.waiting else 0.0)
            results.add(f"fleet_lock_wait_share_p{count}", share, "x",
                        "share of samples with a session waiting on a lock")
            results.details[f"fleet_lock_waits_p{count}"] = dict(sampler.kinds.most_common())
            results.add(f"fleet_connections_p{count}",
                        float(max(sampler.connections, default=0)), "connections",
                        "pgqueue sessions open during the drain (most sampled)")
            if count == max(plan.processes):
                qps, backend_idle, worker_idle = _idle(dsn, workers, plan.idle_seconds)
                label = f"{count} idle processes, {plan.idle_seconds:g} s"
                results.add(f"fleet_idle_xacts_per_s_p{count}", qps, "xacts/s", label)
                if backend_idle is not None:
                    results.add(f"fleet_idle_pg_cpu_p{count}", backend_idle * 100, "% of a core",
                                f"{label}: their backends")
                results.add(f"fleet_idle_worker_cpu_p{count}", worker_idle * 100, "% of a core",
                            f"{label}: the workers")


def run_one_process(server_dsn: str, plan: Plan, results: Results) -> None:
    """The slots of the largest fleet in one process: the same concurrency, one claimer."""
    slots = max(plan.processes) * CONCURRENCY
    with scratch_database(server_dsn, "fleet_one") as dsn, \
            fleet(dsn, ["default"], concurrency=slots) as workers:
        rate, backend, worker, _ = _drain(dsn, workers, plan.jobs, [("default", plan.jobs)])
        results.add(f"fleet_drain_p1_c{slots}", rate, "jobs/s",
                    f"{plan.jobs:,} no-op jobs, 1 process x --concurrency {slots}")
        if backend is not None:
            results.add(f"fleet_pg_cpu_per_job_p1_c{slots}", backend / plan.jobs * 1e6, "us",
                        "PostgreSQL CPU of the pgqueue sessions per job")
        results.add(f"fleet_worker_cpu_per_job_p1_c{slots}", worker / plan.jobs * 1e6, "us",
                    "the worker process's CPU per job")


def run_fanout(server_dsn: str, plan: Plan, results: Results) -> None:
    with scratch_database(server_dsn, "fleet_fanout") as dsn:
        for listeners in plan.listeners:
            with contextlib.ExitStack() as stack:
                for _ in range(listeners):
                    conn = stack.enter_context(psycopg.connect(dsn, autocommit=True))
                    conn.execute("LISTEN pgqueue_jobs")
                times = []
                with psycopg.connect(dsn, autocommit=True) as conn:
                    for i in range(plan.enqueues):
                        started = time.perf_counter()
                        pgqueue.enqueue(conn, KINDS["async"], {"n": i}, queue="fanout",
                                        delay=3600)
                        times.append(time.perf_counter() - started)
            times.sort()
            results.add(f"fleet_enqueue_p50_listeners{listeners}",
                        statistics.median(times) * 1e6, "us",
                        f"one enqueue and its commit, {listeners} sessions listening, "
                        f"median of {plan.enqueues}")
            results.add(f"fleet_enqueue_p95_listeners{listeners}",
                        times[int(0.95 * (len(times) - 1))] * 1e6, "us", "95th percentile")


def run_queues(server_dsn: str, plan: Plan, results: Results) -> None:
    names = [f"q{i}" for i in range(plan.queues)]
    sets = [",".join(names[i:i + QUEUES_PER_WORKER])
            for i in range(0, plan.queues, QUEUES_PER_WORKER)]
    per_queue = max(1, plan.queue_jobs // plan.queues)
    n = per_queue * plan.queues
    with scratch_database(server_dsn, "fleet_queues") as dsn, fleet(dsn, sets) as workers:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO pgqueue.jobs (task, queue, args) "
                "SELECT %s, 'q' || (g %% %s), '{}' FROM generate_series(1, %s) g",
                (KINDS["async"], plan.queues, n))
        _wait_drained(dsn, n, workers)
        verify_drained(dsn, n)
        rate, _ = history_rate(dsn, n)
        note = f"{plan.queues:,} queues, {len(sets)} workers x {QUEUES_PER_WORKER} queues"
        results.add(f"fleet_queues{plan.queues}_drain", rate, "jobs/s",
                    f"{n:,} no-op jobs dealt over {note}")
        qps, backend_idle, worker_idle = _idle(dsn, workers, plan.idle_seconds)
        results.add(f"fleet_queues{plan.queues}_idle_xacts_per_s", qps, "xacts/s",
                    f"{note}, idle {plan.idle_seconds:g} s")
        if backend_idle is not None:
            results.add(f"fleet_queues{plan.queues}_idle_pg_cpu", backend_idle * 100,
                        "% of a core", f"{note}, idle: their backends")
        results.add(f"fleet_queues{plan.queues}_idle_worker_cpu", worker_idle * 100,
                    "% of a core", f"{note}, idle: the workers")


def run(server_dsn: str, plan: Plan, results: Results) -> None:
    run_fanout(server_dsn, plan, results)
    run_drain(server_dsn, plan, results)
    run_one_process(server_dsn, plan, results)
    run_queues(server_dsn, plan, results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=None,
                        help="a server of your own [default: a throwaway one, started here]")
    parser.add_argument("--quick", action="store_true", help="fewer jobs, a few minutes")
    parser.add_argument("--smoke", action="store_true", help="tiny: checks the scenario runs")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    results = Results(mode=f"fleet-{mode}")
    with contextlib.ExitStack() as stack:
        dsn = args.dsn
        if dsn is None:
            server = stack.enter_context(embedded_postgres(("system",),
                                                           settings=SERVER_SETTINGS))
            dsn = server.dsn
            print(f"on {server.description}", flush=True)
        run(dsn, PLANS[mode], results)
    print(results.summary())
    for name, waits in results.details.items():
        print(name, waits)
    print("load average at start", results.load_at_start, "at end", os.getloadavg())


if __name__ == "__main__":
    main()
