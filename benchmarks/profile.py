"""Profile the hot path of the async drain: ``python -m benchmarks.profile``.

Runs one in-process worker (concurrency 50, async no-op jobs; ``--kind sync``
for plain functions in threads) on the main
thread under pyinstrument (not a pgqueue dependency: ``pip install
pyinstrument``) and prints its call tree; ``--html`` writes it as a page too.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from .drain import KINDS, tasks
from .harness import (
    DEFAULT_DSN,
    WorkerRun,
    backend_cpu_seconds,
    insert_ready_jobs,
    scratch_database,
    verify_drained,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("--dsn", default=os.environ.get("PGQUEUE_BENCH_DSN", DEFAULT_DSN))
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--kind", choices=sorted(KINDS), default="async",
                        help="the no-op jobs to drain (default async)")
    parser.add_argument("--interval", type=float, default=0.0005,
                        help="sampling interval in seconds")
    parser.add_argument("--html", type=Path, help="also write the profile as HTML here")
    parser.add_argument("--no-profiler", action="store_true",
                        help="run without pyinstrument (to sample from outside with py-spy)")
    args = parser.parse_args(argv)

    with scratch_database(args.dsn, "profile") as dsn:
        insert_ready_jobs(dsn, KINDS[args.kind], args.jobs)
        run = WorkerRun(tasks, dsn, target=args.jobs, concurrency=args.concurrency)
        if args.no_profiler:
            cpu: dict[str, float | None] = {}
            cpu_before = time.process_time()

            def read_cpu() -> None:
                cpu["python"] = time.process_time() - cpu_before
                cpu["pg"] = backend_cpu_seconds(dsn)

            run.run_in_main_thread(timeout=600, before_stop=read_cpu)
            cpu_python, cpu_pg = cpu["python"] or 0.0, cpu["pg"]
            verify_drained(dsn, args.jobs)
            per_job = 1e6 / args.jobs
            pg = "n/a" if cpu_pg is None else f"{cpu_pg * per_job:.1f}"
            print(f"drain: {run.jobs_per_second():,.0f} jobs/s; CPU per job: "
                  f"Python {cpu_python * per_job:.1f} us, PostgreSQL {pg} us")
            return
        from pyinstrument import Profiler

        profiler = Profiler(interval=args.interval, async_mode="disabled")
        profiler.start()
        run.run_in_main_thread(timeout=600)
        profiler.stop()
        verify_drained(dsn, args.jobs)
    print(f"drain: {run.jobs_per_second():,.0f} jobs/s under the profiler")
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    if args.html:
        args.html.write_text(profiler.output_html())


if __name__ == "__main__":
    main()
