"""Backlog scaling: claim throughput with a small and a large backlog of ready jobs.

For each size, that many ready no-op jobs are inserted in one ``INSERT … SELECT
generate_series`` and the table is vacuumed and analysed (a settled backlog).
One worker at concurrency 50 then drains the first ``backlog_drain`` of them; the
figure is that count over first start → that many outcomes written. The small
case holds ``backlog_small + backlog_drain`` jobs, so it never runs dry. The worker
is stopped and the run checked: the jobs it drained succeeded, every other job
is still live (queued), nothing was lost.
"""

from __future__ import annotations

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


def drain_backlog(server_dsn: str, backlog: int, drain: int) -> float:
    with scratch_database(server_dsn, "backlog") as dsn:
        insert_ready_jobs(dsn, KINDS["async"], backlog)
        run = WorkerRun(tasks, dsn, target=drain, concurrency=CONCURRENCY)
        run.start()
        try:
            run.wait_done(60.0 + drain / 100)
        finally:
            run.stop()
        finished = count_finished(dsn)
        live = count_live(dsn)
        succeeded = finished.get("succeeded", 0)
        if succeeded < drain or sum(finished.values()) != succeeded \
                or succeeded + live != backlog:
            raise BenchmarkError(f"backlog {backlog}: {finished} finished, {live} live")
        return run.jobs_per_second()


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    drain = sizes.backlog_drain
    # The small case holds `drain` more jobs than its nominal size, so at least
    # backlog_small jobs are still waiting when the measured drain ends.
    small_total = sizes.backlog_small + drain
    small = drain_backlog(server_dsn, small_total, drain)
    results.add("backlog_small", small, "jobs/s",
                f"first {drain:,} of {small_total:,} ready jobs, c50")
    large = drain_backlog(server_dsn, sizes.backlog_large, drain)
    results.add("backlog_large", large, "jobs/s",
                f"first {drain:,} of {sizes.backlog_large:,} ready jobs, c50")
    results.add("backlog_ratio", large / small, "x", "large / small backlog")
