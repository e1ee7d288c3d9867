"""Load (``PGQUEUE_SOAK=1`` only): 200,000 jobs enqueued with ``enqueue_many`` and
drained by ``pgqueue worker --processes 2``. Nothing lost, nothing run twice (the
witness table), and ``queue_stats`` agrees with the history table at the end.

Run it with: ``PGQUEUE_SOAK=1 pytest tests/system/test_load.py -s``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg

import pgqueue
from tests.support import fetch, scalar, wait_until
from tests.system.chaos import QUEUE, Ledger, chaos_worker, needs_soak, succeeded, witness

__all__ = ["witness"]

# PGQUEUE_LOAD_JOBS overrides the size (a quick check of the test itself).
TOTAL = int(os.environ.get("PGQUEUE_LOAD_JOBS", "200000"))
BATCH = min(10_000, TOTAL)


@needs_soak
def test_200k_jobs_drained_by_two_processes(witness: str, tmp_path: Path) -> None:
    dsn = witness
    started = time.monotonic()
    ids: list[int] = []
    with psycopg.connect(dsn) as conn:
        for start in range(0, TOTAL, BATCH):
            ids += pgqueue.enqueue_many(conn, [
                {"task": "chaos.work", "queue": QUEUE, "args": {"n": i, "max_ms": 0}}
                for i in range(start, start + BATCH)])
            conn.commit()
    enqueued = time.monotonic() - started
    worker = chaos_worker(dsn, tmp_path / "worker.log", "--processes", "2",
                          "--concurrency", "20")
    try:
        wait_until(lambda: succeeded(dsn) == TOTAL, timeout=1800, interval=1.0,
                   message=f"{TOTAL} jobs to succeed")
        drained = time.monotonic() - started - enqueued
        worker.signal(signal.SIGTERM)
        assert worker.wait(60) == 0, worker.output
    finally:
        worker.kill()
    ledger = Ledger.of(dsn, ids)
    assert ledger.succeeded == TOTAL and ledger.lost == 0 and ledger.live == 0, ledger
    assert ledger.runs == TOTAL and ledger.duplicates == 0, ledger
    stats = fetch(dsn, "SELECT ready, scheduled, running, failed, succeeded_1h "
                       "FROM pgqueue.queue_stats WHERE queue = %s", [QUEUE])
    history = scalar(dsn, "SELECT count(*) FROM pgqueue.finished_jobs WHERE queue = %s "
                          "AND state = 'succeeded'", [QUEUE])
    print(f"\n[load] jobs={TOTAL} enqueue_seconds={enqueued:.1f} drain_seconds={drained:.1f} "
          f"rate={TOTAL / drained:.0f}/s stats={stats} history={history} runs={ledger.runs} "
          f"duplicates=0 lost=0")
    assert history == TOTAL
    assert stats == [(0, 0, 0, 0, history)], stats
