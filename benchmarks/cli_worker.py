"""The worker as users run it: ``pgqueue worker`` against the in-process drain, one sitting.

Each configuration drains N ready no-op async jobs at concurrency 50 on a fresh
database; the configurations alternate over ``rounds`` so that a slow moment of
the machine hits all alike, and the median round of each counts. Every figure
is N over ``max(finished_at) - min(started_at)`` of the history rows (one clock
for all), and counts only once all N jobs succeeded.

- ``inprocess``: one :class:`pgqueue.Worker` in this process, without logs or
  metrics (what ``drain_async_c50`` measures);
- ``default``: ``pgqueue worker --concurrency 50`` at its defaults: logs at
  INFO (per-queue summaries; per-job lines only for retries and failures) and
  metrics on (a free port instead of 2112, which another worker may hold);
- ``warning``: ``--log-level warning``, metrics on;
- ``nometrics``: ``--metrics-port 0``, logs at INFO;
- ``bare``: ``--log-level warning --metrics-port 0``: the CLI worker with
  neither, what the command itself costs;
- ``debug``: ``--log-level debug``: a line per finished job, metrics on.

Logs go to a file. Prints ``cli_<config>_c50`` in jobs/s,
``cli_<config>_cpu``, the worker process's CPU per job while it drains (less
swayed by other work on the machine than throughput; in process it includes the
harness's few event callbacks), and ``cli_<config>_ratio`` (its median over the
in-process median).

Run: ``python -m benchmarks cli [--quick|--smoke]``.
"""

from __future__ import annotations

import statistics

from .drain import KINDS, PROCESS_CONCURRENCY, cli_drain, drain_once, free_port, history_rate
from .harness import Results, Sizes, insert_ready_jobs, scratch_database

CONFIGS: dict[str, tuple[str, ...]] = {
    "inprocess": (),
    "default": (),
    "warning": ("--log-level", "warning"),
    "nometrics": ("--metrics-port", "0"),
    "bare": ("--log-level", "warning", "--metrics-port", "0"),
    "debug": ("--log-level", "debug"),
}


def drain_config(server_dsn: str, config: str, n: int) -> tuple[float, float | None]:
    """Jobs per second of one drain of ``n`` jobs in ``config``, and the worker's
    CPU seconds over it (None when unknown)."""
    if config == "inprocess":
        scratch = Results(mode="scratch")
        return drain_once(server_dsn, "async", PROCESS_CONCURRENCY, n, scratch,
                          quiet=True, history_clock=True)
    with scratch_database(server_dsn, f"cli_{config}") as dsn:
        insert_ready_jobs(dsn, KINDS["async"], n)
        options = CONFIGS[config]
        if "--metrics-port" not in options:
            options = (*options, "--metrics-port", str(free_port()))
        cpu = cli_drain(dsn, n, "--concurrency", str(PROCESS_CONCURRENCY), *options)
        rate, _ = history_rate(dsn, n)
        return rate, cpu


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    n, rounds = sizes.cli_drain, sizes.cli_rounds
    rates: dict[str, list[float]] = {config: [] for config in CONFIGS}
    cpus: dict[str, list[float]] = {config: [] for config in CONFIGS}
    for _ in range(rounds):
        for config in CONFIGS:
            rate, cpu = drain_config(server_dsn, config, n)
            rates[config].append(rate)
            if cpu is not None:
                cpus[config].append(cpu / n * 1e6)
    medians = {config: statistics.median(values) for config, values in rates.items()}
    note = f"{n:,} async no-op jobs, median of {rounds}"
    for config, median in medians.items():
        spread = ", ".join(f"{v:,.0f}" for v in rates[config])
        results.add(f"cli_{config}_c{PROCESS_CONCURRENCY}", median, "jobs/s",
                    f"{note} ({spread})")
    for config, values in cpus.items():
        if values:
            results.add(f"cli_{config}_cpu", statistics.median(values), "us/job",
                        "worker process CPU per job while draining, median")
    for config, median in medians.items():
        if config != "inprocess":
            results.add(f"cli_{config}_ratio", median / medians["inprocess"], "x",
                        f"pgqueue worker ({config}) / in process, medians")
