"""Command line: ``python -m benchmarks
{enqueue,drain,latency,backlog,stats,bloat,retention,all,peers,pooler,cli,ceiling,
hop}``.

``all`` runs pgqueue's own scenarios; ``peers`` runs pgqueue's bulk enqueue,
drain and latency side by side with the peers of the optional ``bench`` extra
(procrastinate, pgqueuer) and prints ratios pgqueue / peer; ``pooler`` runs
drain and idle latency direct and through a PgBouncer in transaction mode it
starts (it needs the ``pgbouncer`` binary); ``cli`` runs ``pgqueue worker`` as a
subprocess at its defaults and with less observability against the in-process
drain and prints the ratios; ``ceiling`` runs the SQL a batching worker must do
from pgbench (a C client), against pgqueue's drain in the same sitting.

Options: ``--quick`` (under two minutes), ``--smoke`` (a few hundred jobs per
scenario, for tests), ``--dsn`` (the server; each scenario creates and drops its
own database there; default ``PGQUEUE_BENCH_DSN`` or the local server) and
``--out`` (the JSON result file). Prints one ``name value unit`` line per figure,
then a summary table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import (
    backlog,
    bloat,
    ceiling,
    cli_worker,
    drain,
    enqueue,
    hop,
    latency,
    peers,
    pooler,
    retention,
    stats,
)
from .harness import DEFAULT_DSN, DEFAULT_OUT, Results, Sizes, server_facts, sizes_for

Scenario = Callable[[str, Sizes, Results], None]

SCENARIOS: dict[str, list[Scenario]] = {
    "enqueue": [enqueue.run],
    "drain": [drain.run, drain.run_processes],
    "latency": [latency.run],
    "backlog": [backlog.run],
    "stats": [stats.run],
    "bloat": [bloat.run],
    "retention": [retention.run],
    "peers": [peers.run],
    "pooler": [pooler.run],
    "cli": [cli_worker.run],
    "ceiling": [ceiling.run],
    "hop": [hop.run],
}
ORDER = ["enqueue", "drain", "latency", "backlog", "stats", "bloat", "retention"]
EXTRA = [name for name in SCENARIOS if name not in ORDER]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*ORDER, "all", *EXTRA])
    parser.add_argument("--quick", action="store_true", help="smaller runs, under two minutes")
    parser.add_argument("--smoke", action="store_true",
                        help="a few hundred jobs per scenario: checks the suite runs")
    parser.add_argument("--dsn", default=os.environ.get("PGQUEUE_BENCH_DSN", DEFAULT_DSN),
                        help="PostgreSQL server (a database there to connect to first)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sizes_for(quick=args.quick, smoke=args.smoke)
    results = Results(mode=sizes.mode)
    names = ORDER if args.scenario == "all" else [args.scenario]
    started = time.perf_counter()
    for name in names:
        for scenario in SCENARIOS[name]:
            scenario(args.dsn, sizes, results)
    elapsed = time.perf_counter() - started
    load = ", ".join(f"{x:.1f}" for x in results.load_at_start)
    print(f"\n{sizes.mode} run: {len(results.figures)} figures in {elapsed:.0f} s "
          f"(load average at start: {load})\n")
    print(results.summary())
    results.write(args.out, server_facts(args.dsn))
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
