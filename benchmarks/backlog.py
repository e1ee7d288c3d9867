"""Backlog scaling: claim throughput with a small and a large backlog kept waiting.

For each size N (``backlog_small``, ``backlog_large``), ready no-op jobs are
inserted in one ``INSERT … SELECT generate_series`` and the table is vacuumed and
analysed (a settled backlog). One worker at concurrency 50 then drains
``backlog_drain`` jobs while a feeder thread tops the queue up with
``INSERT … SELECT`` of ``TOP_UP`` jobs whenever fewer than N plus the worker's
largest possible hold plus one top-up are left unfinished, so about N to
N + 600 jobs wait, unclaimed, for the whole measurement, in both cases alike
(the feeder's inserts cost the same in both). The figure is ``backlog_drain``
over first start → that many outcomes written; the note gives the least number
of jobs that can have been waiting at any outcome (inserted − finished − the
hold). The worker is stopped and the run checked: the jobs it drained succeeded,
every other job inserted is still live, nothing was lost.
"""

from __future__ import annotations

import threading

import psycopg

from pgqueue import events

from .drain import KINDS, tasks
from .harness import (
    BenchmarkError,
    Results,
    Sizes,
    WorkerRun,
    count_finished,
    count_live,
    insert_ready_jobs,
    scratch_database,
)

CONCURRENCY = 50
# A worker holds at most twice its concurrency in claimed jobs (running + prefetched).
MAX_HOLD = 2 * CONCURRENCY
TOP_UP = 250

INSERT = ("INSERT INTO pgqueue.jobs (task, queue, args) "
          "SELECT %s, 'default', jsonb_build_object('n', g) "
          "FROM generate_series(%s::bigint, %s::bigint) g")


class Feeder:
    """Keeps ``waiting`` jobs queued ahead of a worker: inserted − finished ≥ keep."""

    def __init__(self, dsn: str, run: WorkerRun, waiting: int, inserted: int) -> None:
        self.dsn = dsn
        self.run = run
        self.keep = waiting + MAX_HOLD + TOP_UP
        self.inserted = inserted
        self.least_waiting = inserted - MAX_HOLD
        self._need = threading.Event()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._loop, name="bench-feeder", daemon=True)
        run.on_finish = self._on_finish

    def _on_finish(self, event: events.JobFinished) -> None:
        # On the worker's loop: no I/O here, only a wake-up for the feeder thread.
        unfinished = self.inserted - self.run.finished
        if self.run.finished <= self.run.target:  # the measured part of the drain
            self.least_waiting = min(self.least_waiting, unfinished - MAX_HOLD)
        if unfinished < self.keep:
            self._need.set()

    def _loop(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self._stop.is_set():
                    if not self._need.wait(0.1):
                        continue
                    self._need.clear()
                    while self.inserted - self.run.finished < self.keep \
                            and not self._stop.is_set():
                        first = self.inserted + 1
                        conn.execute(INSERT, (KINDS["async"], first, first + TOP_UP - 1))
                        self.inserted += TOP_UP
        except BaseException as exc:
            self._errors.append(exc)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self._errors:
            raise BenchmarkError(f"the feeder failed: {self._errors[0]!r}") from self._errors[0]


def drain_backlog(server_dsn: str, waiting: int, drain: int) -> tuple[float, int, int]:
    """(jobs/s, least jobs waiting at any outcome, jobs inserted in all)."""
    with scratch_database(server_dsn, "backlog") as dsn:
        initial = waiting + MAX_HOLD + 2 * TOP_UP
        insert_ready_jobs(dsn, KINDS["async"], initial)
        run = WorkerRun(tasks, dsn, target=drain, concurrency=CONCURRENCY)
        feeder = Feeder(dsn, run, waiting, initial)
        feeder.start()
        try:
            run.start()
            run.wait_done(60.0 + drain / 100)
        finally:
            try:
                feeder.stop()
            finally:
                run.stop()
        total = feeder.inserted
        finished = count_finished(dsn)
        live = count_live(dsn)
        succeeded = finished.get("succeeded", 0)
        if succeeded < drain or sum(finished.values()) != succeeded \
                or succeeded + live != total:
            raise BenchmarkError(f"backlog {waiting}: {finished} finished, {live} live, "
                                 f"{total} inserted")
        return run.jobs_per_second(), feeder.least_waiting, total


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    drain = sizes.backlog_drain
    figures = {}
    for label, waiting in (("small", sizes.backlog_small), ("large", sizes.backlog_large)):
        rate, least, total = drain_backlog(server_dsn, waiting, drain)
        figures[label] = results.add(
            f"backlog_{label}", rate, "jobs/s",
            f"{drain:,} jobs drained with {waiting:,} waiting (never fewer than {least:,}; "
            f"{total:,} inserted), c{CONCURRENCY}").value
    results.add("backlog_ratio", figures["large"] / figures["small"], "x",
                f"{sizes.backlog_large:,} / {sizes.backlog_small:,} waiting")
