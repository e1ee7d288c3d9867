"""Shared pieces of the fault tests: the witness table, `pgqueue worker` processes
on the chaos app, and the accounting that proves nothing was lost.

``PGQUEUE_SOAK=1`` makes the fault and load tests run at full size (see
:func:`soak`); the default sizes keep the suite quick.
"""

from __future__ import annotations

import collections
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.apps.chaos_app import WITNESS_DDL
from tests.support import fetch, scalar
from tests.system.test_worker_process import WorkerProcess

APP = "tests.apps.chaos_app:tasks"
QUEUE = "chaos"


def soak() -> bool:
    """Whether ``PGQUEUE_SOAK=1`` asks for the big runs."""
    return os.environ.get("PGQUEUE_SOAK", "") not in ("", "0")


needs_soak = pytest.mark.skipif(not soak(), reason="set PGQUEUE_SOAK=1 to run the soak tests")


@pytest.fixture
def witness(clean_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The clean session database with an empty ``chaos_runs`` table, named in the
    environment the worker subprocesses inherit."""
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(WITNESS_DDL)
        conn.execute("TRUNCATE chaos_runs")
    monkeypatch.setenv("PGQUEUE_CHAOS_DSN", clean_db)
    return clean_db


def chaos_worker(dsn: str, log: Path, *options: str) -> WorkerProcess:
    """``pgqueue worker`` on the chaos app (its witness DSN comes from the environment)."""
    return WorkerProcess(dsn, "--app", APP, *options, log=log)


def enqueue_work(dsn: str, total: int, max_ms: int = 50, task: str = "chaos.work",
                 naps: tuple[float, float] = (0.2, 2.0)) -> list[int]:
    """``total`` jobs of ``task``; ``chaos.nap`` jobs sleep from ``naps[0]`` to ``naps[1]`` s."""
    args: list[dict[str, Any]] = [{"n": i, "max_ms": max_ms} for i in range(total)]
    if task == "chaos.nap":
        low, high = naps
        args = [{"seconds": low + (high - low) * (i % 10) / 9} for i in range(total)]
    with psycopg.connect(dsn) as conn:
        ids = pgqueue.enqueue_many(conn, [{"task": task, "queue": QUEUE, "args": a}
                                          for a in args])
    return ids


def runs(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM chaos_runs"))


def succeeded(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM pgqueue.finished_jobs "
                           "WHERE state = 'succeeded'"))


@dataclass
class Ledger:
    """Where every job ended and how often it ran, from the database alone."""

    jobs: int
    succeeded: int
    live: int
    other_final: int
    missing: int
    runs: int
    duplicates: int          # jobs run more than once
    extra_runs: int          # runs beyond the first, summed
    reclaims: int            # 'stalled' entries in the jobs' error lists
    reclaimed_jobs: int      # jobs reclaimed at least once
    reclaims_after_run: int  # reclaimed attempts whose handler had recorded its run
    reclaims_before_run: int  # reclaimed attempts killed before the handler's record
    handed_back: int         # 'interrupted' entries (graceful shutdown)
    unexplained: int         # jobs that ran more often than their reclaims allow
    same_attempt_twice: int  # (job, attempt) pairs that ran twice
    lost: int

    @classmethod
    def of(cls, dsn: str, ids: list[int]) -> Ledger:
        with psycopg.connect(dsn, autocommit=True) as conn:
            final = dict(conn.execute(
                "SELECT state::text, count(*) FROM pgqueue.finished_jobs "
                "WHERE id = ANY(%s) GROUP BY 1", [ids]).fetchall())
            live = conn.execute("SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%s)",
                                [ids]).fetchone()
            entries = conn.execute(
                "SELECT a.id, e ->> 'kind', (e ->> 'attempt')::int FROM pgqueue.all_jobs a, "
                "jsonb_array_elements(a.errors) e WHERE a.id = ANY(%s)", [ids]).fetchall()
            ran = conn.execute("SELECT job_id, attempt FROM chaos_runs").fetchall()
        assert live is not None
        kinds = [(job, kind) for job, kind, _ in entries]
        stalled_attempts = [(job, attempt) for job, kind, attempt in entries
                            if kind == "stalled"]
        per_job = collections.Counter(job for job, _ in ran)
        pairs = collections.Counter(ran)
        stalled = collections.Counter(job for job, kind in kinds if kind == "stalled")
        interrupted = sum(1 for _, kind in kinds if kind == "interrupted")
        # A run beyond the first needs a reclaim or a hand-back behind it.
        handed = collections.Counter(job for job, kind in kinds if kind == "interrupted")
        unexplained = sum(1 for job, n in per_job.items()
                          if n - 1 > stalled[job] + handed[job])
        done = sum(final.values())
        return cls(
            jobs=len(ids), succeeded=final.get("succeeded", 0), live=int(live[0]),
            other_final=done - final.get("succeeded", 0),
            missing=len(ids) - done - int(live[0]), runs=len(ran),
            duplicates=sum(1 for n in per_job.values() if n > 1),
            extra_runs=sum(n - 1 for n in per_job.values() if n > 1),
            reclaims=sum(stalled.values()), reclaimed_jobs=len(stalled),
            reclaims_after_run=sum(1 for pair in stalled_attempts if pair in pairs),
            reclaims_before_run=sum(1 for pair in stalled_attempts if pair not in pairs),
            handed_back=interrupted, unexplained=unexplained,
            same_attempt_twice=sum(1 for n in pairs.values() if n > 1),
            lost=len(ids) - done - int(live[0]))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def ran_ids(dsn: str) -> set[int]:
    return {r[0] for r in fetch(dsn, "SELECT DISTINCT job_id FROM chaos_runs")}
