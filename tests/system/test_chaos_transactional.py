"""Chaos for exactly-once database effects: `pgqueue worker` processes whose handlers
bump a per-job counter row in ``ctx.transaction()`` are SIGKILLed, and SIGSTOPped
past the stall timeout then SIGCONTed (their jobs reclaimed and run elsewhere
while the stopped attempt sits inside its transaction), until every job is done.

At the end every job succeeded exactly once and every counter row is exactly 1:
no run was counted twice although many jobs ran more than once. Half the jobs
are async handlers, half sync ones on worker threads.

The test can fail: with ``PGQUEUE_CHAOS_UNFENCED=1`` in the workers' environment
the handlers commit their bump on a connection of their own (what a handler
without ctx.transaction() does), and the same run ends with counters above 1
(see :func:`run_chaos` and the README's "Exactly-once database effects").
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.apps.chaos_app import COUNTER_DDL
from tests.support import fetch, scalar, wait_until
from tests.system.chaos import QUEUE, chaos_worker, soak, witness
from tests.system.test_worker_process import WorkerProcess

__all__ = ["witness"]

WORKERS = 4
FAULT_EVERY_SECONDS = 0.7
OPTIONS = ("--concurrency", "4", "--poll-interval", "0.5", "--heartbeat-interval", "0.2",
           "--stall-timeout", "1.0", "--shutdown-timeout", "5")
STOP_SECONDS = (1.5, 3.0)  # past the stall timeout: the stopped worker's jobs are reclaimed


@pytest.fixture
def counters(witness: str) -> str:
    with psycopg.connect(witness, autocommit=True) as conn:
        conn.execute(COUNTER_DDL)
        conn.execute("TRUNCATE chaos_counters")
    return witness


def enqueue_counted(dsn: str, total: int, rng: random.Random) -> list[int]:
    jobs: list[dict[str, Any]] = [
        {"task": "chaos.count_async" if i % 2 else "chaos.count_sync", "queue": QUEUE,
         "args": {"ms": rng.randint(100, 400)},
         # Enqueued by name, a job takes the default 5 attempts, not the task's: a job
         # whose attempts keep landing on workers that get stopped (each new attempt
         # waits on the counter row the stale one still locks) can use them all.
         "max_attempts": 25} for i in range(total)]
    with psycopg.connect(dsn) as conn:
        return pgqueue.enqueue_many(conn, jobs)


def finished(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM pgqueue.finished_jobs"))


@dataclass
class Chaos:
    kills: int = 0
    stops: int = 0
    workers: list[WorkerProcess] = field(default_factory=list)
    everyone: list[WorkerProcess] = field(default_factory=list)
    stopped: dict[int, float] = field(default_factory=dict)  # pid -> when to resume


def run_chaos(dsn: str, tmp_path: Path, total: int, deadline_seconds: float,
              seed: int = 19) -> tuple[Chaos, float]:
    """Drain ``total`` counted jobs while killing and stopping workers; return the
    faults and the seconds taken. Waits on the database only."""
    rng = random.Random(seed)
    enqueue_counted(dsn, total, rng)
    logs = iter(tmp_path / f"worker{i}.log" for i in range(10_000))
    chaos = Chaos()

    def spawn() -> None:
        worker = chaos_worker(dsn, next(logs), *OPTIONS)
        chaos.workers.append(worker)
        chaos.everyone.append(worker)

    for _ in range(WORKERS):
        spawn()
    started = time.monotonic()
    try:
        wait_until(lambda: scalar(dsn, "SELECT count(*) FROM chaos_counters") > 0,
                   timeout=60, message="the first counted run")
        while finished(dsn) < total:
            assert time.monotonic() - started < deadline_seconds, (
                f"not drained after {deadline_seconds} s: {finished(dsn)} of {total}")
            time.sleep(FAULT_EVERY_SECONDS)  # the driver's cadence, not a correctness wait
            now = time.monotonic()
            for w in chaos.workers:
                resume = chaos.stopped.get(w.proc.pid)
                if resume is not None and now >= resume:
                    w.signal(signal.SIGCONT)
                    del chaos.stopped[w.proc.pid]
            running = [w for w in chaos.workers if w.proc.pid not in chaos.stopped]
            if len(running) < 2 or finished(dsn) >= total:
                continue  # keep two workers running, so the reaper and the claims go on
            victim = rng.choice(running)
            if rng.random() < 0.5:
                victim.signal(signal.SIGKILL)
                victim.proc.wait(10)
                chaos.workers.remove(victim)
                chaos.kills += 1
                spawn()
            else:
                victim.signal(signal.SIGSTOP)
                chaos.stopped[victim.proc.pid] = now + rng.uniform(*STOP_SECONDS)
                chaos.stops += 1
        elapsed = time.monotonic() - started
        for w in chaos.workers:
            if w.proc.pid in chaos.stopped:
                w.signal(signal.SIGCONT)
        chaos.stopped.clear()
        pids = {w.proc.pid for w in chaos.workers}
        wait_until(lambda: pids <= {r[0] for r in fetch(dsn, "SELECT pid FROM pgqueue.workers")},
                   timeout=60, message="every live worker registered")
        for w in chaos.workers:
            w.signal(signal.SIGTERM)
        for w in chaos.workers:
            assert w.wait(30) == 0, w.output
    finally:
        for w in chaos.everyone:
            if w.proc.poll() is None:
                os.kill(w.proc.pid, signal.SIGCONT)
            w.kill()
    return chaos, elapsed


def test_kills_and_stops_never_count_a_transactional_effect_twice(
        counters: str, tmp_path: Path) -> None:
    dsn = counters
    total = 1000 if soak() else 200
    chaos, elapsed = run_chaos(dsn, tmp_path, total, deadline_seconds=240 if soak() else 120)
    with psycopg.connect(dsn, autocommit=True) as conn:
        states = dict(conn.execute("SELECT state::text, count(*) FROM pgqueue.finished_jobs "
                                   "GROUP BY 1").fetchall())
        once = conn.execute("SELECT count(DISTINCT id) FROM pgqueue.finished_jobs").fetchone()
        live = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
        rows, summed, most = conn.execute(
            "SELECT count(*), coalesce(sum(n), 0), coalesce(max(n), 0) "
            "FROM chaos_counters").fetchone() or (0, 0, 0)
        orphans = conn.execute("SELECT count(*) FROM chaos_counters c WHERE NOT EXISTS "
                               "(SELECT FROM pgqueue.finished_jobs f WHERE f.id = c.job_id)"
                               ).fetchone()
        reclaims, reran = conn.execute(
            "SELECT count(*), count(DISTINCT f.id) FROM pgqueue.finished_jobs f, "
            "jsonb_array_elements(f.errors) e WHERE e ->> 'kind' = 'stalled'").fetchone() \
            or (0, 0)
        attempts = conn.execute("SELECT coalesce(sum(attempt), 0) FROM pgqueue.finished_jobs"
                                ).fetchone()
        not_succeeded = conn.execute(
            "SELECT id, state::text, attempt, errors FROM pgqueue.finished_jobs "
            "WHERE state <> 'succeeded'").fetchall()
    logs = "".join(w.output for w in chaos.everyone)
    rolled_back = logs.count("its transaction rolled back")
    figures = {"jobs": total, "workers": WORKERS, "kills": chaos.kills, "stops": chaos.stops,
               "seconds": round(elapsed, 1), "states": states, "counter_rows": rows,
               "counter_sum": summed, "counter_max": most, "reclaims": reclaims,
               "reclaimed_jobs": reran, "attempts": attempts and attempts[0],
               "stale_rollbacks_logged": rolled_back}
    (tmp_path / "chaos_transactional.json").write_text(json.dumps(figures, indent=2))
    print(f"\n[chaos-tx] {json.dumps(figures)}")
    assert chaos.kills >= 2 and chaos.stops >= 2, figures
    assert reclaims > 0, f"no attempt was reclaimed: the faults proved nothing {figures}"
    assert states == {"succeeded": total}, (figures, not_succeeded)
    assert once is not None and once[0] == total and live is not None and live[0] == 0, figures
    # Exactly once: every job's effect is there, and none twice.
    assert (rows, summed, most) == (total, total, 1), figures
    assert orphans is not None and orphans[0] == 0, figures
    assert "Traceback" not in logs
