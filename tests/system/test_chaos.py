"""Chaos: `pgqueue worker` processes SIGKILLed at random while they drain a queue.

Four workers (small heartbeat and stall settings) run N jobs of 0-50 ms; a
driver kills a random worker every couple of seconds and starts a replacement.
At the end every job has succeeded, none is missing, and every extra run is
explained by a reclaim recorded on that job (at-least-once, never silently):
the extra runs equal the reclaimed attempts whose handler had started.

Default size: 5,000 jobs (well under a minute here). ``PGQUEUE_SOAK=1``: 20,000.
The figures are printed and written to ``chaos.json`` in the test's tmp dir.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

from tests.support import fetch, wait_until
from tests.system.chaos import (
    Ledger,
    chaos_worker,
    enqueue_work,
    runs,
    soak,
    succeeded,
    witness,
)
from tests.system.test_worker_process import WorkerProcess

__all__ = ["witness"]

WORKERS = 4
KILL_EVERY_SECONDS = 1.5
OPTIONS = ("--concurrency", "8", "--poll-interval", "1", "--heartbeat-interval", "0.3",
           "--stall-timeout", "1.5", "--shutdown-timeout", "5")


def test_sigkill_chaos_loses_nothing_and_explains_every_duplicate(
        witness: str, tmp_path: Path) -> None:
    dsn = witness
    total = 20_000 if soak() else 5_000
    deadline_seconds = 900 if soak() else 120
    rng = random.Random(4)
    ids = enqueue_work(dsn, total)
    started = time.monotonic()
    logs = iter(tmp_path / f"worker{i}.log" for i in range(10_000))
    workers: list[WorkerProcess] = [chaos_worker(dsn, next(logs), *OPTIONS)
                                    for _ in range(WORKERS)]
    everyone = list(workers)
    kills = 0
    try:
        wait_until(lambda: runs(dsn) > 0, timeout=30, message="the first run")
        while succeeded(dsn) < total:
            assert time.monotonic() - started < deadline_seconds, (
                f"not drained after {deadline_seconds} s: {Ledger.of(dsn, ids)}")
            time.sleep(KILL_EVERY_SECONDS)  # the driver's cadence, not a correctness wait
            if succeeded(dsn) >= total:
                break
            victim = workers.pop(rng.randrange(len(workers)))
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            kills += 1
            replacement = chaos_worker(dsn, next(logs), *OPTIONS)
            workers.append(replacement)
            everyone.append(replacement)
        elapsed = time.monotonic() - started
        # A replacement may still be starting. Once pgqueue's code runs, a SIGTERM is a
        # clean stop (tests/system/test_worker_startup.py); before that, while the
        # interpreter itself starts, no program can catch it: wait for registration.
        pids = {w.proc.pid for w in workers}
        wait_until(lambda: pids <= {r[0] for r in fetch(dsn, "SELECT pid FROM pgqueue.workers")},
                   timeout=60, message="every live worker registered")
        for w in workers:
            w.signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(30) == 0, w.output
    finally:
        for w in everyone:
            w.kill()
    ledger = Ledger.of(dsn, ids)
    figures = {"jobs": total, "workers": WORKERS, "kills": kills,
               "seconds": round(elapsed, 1), **ledger.as_dict()}
    report = tmp_path / "chaos.json"
    report.write_text(json.dumps(figures, indent=2))
    print(f"\n[chaos] {json.dumps(figures)}\n[chaos] figures written to {report}")
    assert kills >= 3, "the run ended before the driver killed enough workers"
    assert ledger.succeeded == total and ledger.live == 0 and ledger.missing == 0, ledger
    assert ledger.lost == 0 and ledger.other_final == 0, ledger
    assert ledger.reclaims > 0, "no worker died holding a job: the kills proved nothing"
    # Every job ran; a job ran more than once only because it was reclaimed, and
    # never twice under the same attempt (the claim hands each attempt out once).
    assert ledger.runs >= total
    assert ledger.unexplained == 0, ledger
    assert ledger.same_attempt_twice == 0, ledger
    # Exactly: each run beyond a job's first is one reclaimed attempt that had
    # started its handler (the others were killed between the claim and the record).
    assert ledger.extra_runs == ledger.reclaims_after_run, ledger
    assert ledger.duplicates <= ledger.reclaimed_jobs, ledger
    assert not any("Traceback" in w.output for w in everyone)
