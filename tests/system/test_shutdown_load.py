"""Graceful shutdown under load: SIGTERM to every worker with ~1,000 jobs in flight.

Handlers sleep 3 to 12 s, longer than the slots take to fill even on a loaded
machine, so ~1,000 are running at once; the grace period is short, so few or none
finish in it and the rest are handed back at once. After the exit every job is `succeeded`
or back in `queued` with its attempt given back; none is left `running`, none
is lost; a new worker then finishes the queued ones.
"""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support import fetch, scalar, wait_until
from tests.system.chaos import chaos_worker, enqueue_work, succeeded, witness

__all__ = ["witness"]

WORKERS = 4
CONCURRENCY = 250
OPTIONS = ("--concurrency", str(CONCURRENCY), "--poll-interval", "1",
           "--heartbeat-interval", "1", "--stall-timeout", "30", "--shutdown-timeout", "0.5")


def running(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'running'"))


def test_sigterm_under_load_leaves_every_job_succeeded_or_queued(
        witness: str, tmp_path: Path) -> None:
    dsn = witness
    total = 1200
    ids = enqueue_work(dsn, total, task="chaos.nap", naps=(3.0, 12.0))
    workers = [chaos_worker(dsn, tmp_path / f"worker{i}.log", *OPTIONS) for i in range(WORKERS)]
    try:
        # Every worker up (its signal handlers installed) before the signal.
        wait_until(lambda: scalar(dsn, "SELECT count(*) FROM pgqueue.workers") == WORKERS,
                   timeout=180, message="every worker registered")
        in_flight = wait_until(lambda: (n := running(dsn)) >= 900 and n, timeout=180,
                               message="~1,000 jobs in flight")
        for w in workers:
            w.signal(signal.SIGTERM)
        codes = [w.wait(30) for w in workers]
        assert codes == [0] * WORKERS, [w.output for w in workers]
    finally:
        for w in workers:
            w.kill()
    states = dict(fetch(dsn, "SELECT state::text, count(*) FROM pgqueue.all_jobs "
                             "WHERE id = ANY(%s) GROUP BY 1", [ids]))
    done = states.get("succeeded", 0)
    queued = states.get("queued", 0)
    assert set(states) <= {"succeeded", "queued"}, states
    assert done + queued == total, states
    # A handed-back job keeps its attempt count: attempt given back, reason recorded.
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE attempt <> 0") == 0
    handed = scalar(dsn, "SELECT count(*) FROM pgqueue.jobs "
                         "WHERE errors -> -1 ->> 'kind' = 'interrupted'")
    # The rest of the queued jobs were never claimed (more jobs than slots).
    never_claimed = scalar(dsn, "SELECT count(*) FROM pgqueue.jobs "
                                "WHERE errors = '[]'::jsonb AND started_at IS NULL")
    assert handed + never_claimed == queued and handed > 0, (handed, never_claimed, queued)
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.workers") == 0
    figures = {"jobs": total, "in_flight_at_sigterm": in_flight,
               "succeeded_in_grace": done, "handed_back": handed,
               "never_claimed": never_claimed, "left_running": 0, "lost": 0}
    print(f"\n[shutdown under load] {figures}")

    # The finisher need not sleep through the naps again: what is tested is that it
    # takes every handed-back job.
    fetch(dsn, "UPDATE pgqueue.jobs SET args = '{\"seconds\": 0.01}' RETURNING id")
    finisher = chaos_worker(dsn, tmp_path / "finisher.log", *OPTIONS)
    try:
        wait_until(lambda: succeeded(dsn) == total, timeout=60,
                   message="a new worker to finish the handed-back jobs")
        finisher.signal(signal.SIGTERM)
        assert finisher.wait(30) == 0
    finally:
        finisher.kill()
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 0
