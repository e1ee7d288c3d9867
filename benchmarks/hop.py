"""Workers a network hop away: drain and idle wake-up latency with the worker's
connections delayed 0.25, 0.5 and 1 ms each way, against direct, in one sitting.

``python -m benchmarks hop [--quick | --smoke]``. Each delay is a
:mod:`benchmarks.delay_proxy` in a process of its own, in front of the server;
a proxy of 0 ms (``proxy0``) separates what the proxy itself costs from the
delay. Configurations: ``direct``, ``proxy0``, ``0_25ms``, ``0_5ms``, ``1ms``.

- ``hop_select1_<config>``: median ``SELECT 1`` round trip of one connection
  (taken before each drain, median of the rounds): what each configuration
  adds to every statement.
- ``hop_drain_<config>``: N ready async no-op jobs drained by one in-process
  worker at concurrency 50 (:func:`benchmarks.drain.drain_once`), its
  connections through the proxy; the scratch database is made, filled and
  checked directly. Configurations alternate over ``rounds`` (the order
  rotating each round), the median counts. ``hop_drain_share_<config>``:
  against ``direct``; ``hop_drain_vs_proxy0_<config>``: against ``proxy0``.
- ``hop_proxy_cpu_us_per_job_<config>``: the proxy process's CPU per job over
  a drain (its start and stop included), median; ``hop_proxy_cpu_us_per_job``:
  the median over every proxied drain.
- ``hop_round_trips_per_1k_jobs_<config>``: the worker's writes to the server
  per 1,000 jobs over a drain (its sessions run one statement at a time, so a write is a
  statement and its round trip); per session in the result file's details
  (``hop_drain_sessions``, and per latency sample ``hop_latency_sessions``;
  both of the last round).
- ``hop_commits_per_1k_jobs_<config>``, ``hop_python_cpu_us_per_job_<config>``,
  ``hop_postgres_cpu_us_per_job_<config>``: what :func:`drain_once` counts
  over a drain (every worker statement commits alone: commits are statements,
  for ``direct`` too), medians.
- ``hop_latency_<p50|p95|p99>_<config>``: commit returned → handler start with
  an idle worker (:func:`benchmarks.latency.wake_up_samples`), the samples of
  every round pooled. The producer connects through the same proxy as the
  worker, as a remote application would: its commit's reply then travels the
  hop while the notification does. ``hop_latency_<...>_1ms_local_producer``:
  the producer direct, the worker 1 ms away (the notification and the claim's
  round trip, with nothing hidden).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack

import psycopg

from .delay_proxy import ProxyProcess, delay_proxy
from .drain import drain_once
from .harness import Results, Sizes
from .latency import percentile, wake_up_samples

CONFIGS: dict[str, float | None] = {"direct": None, "proxy0": 0.0, "0_25ms": 0.25,
                                    "0_5ms": 0.5, "1ms": 1.0}
DELAYED = ("0_25ms", "0_5ms", "1ms")
LOCAL_PRODUCER = "1ms_local_producer"
CONCURRENCY = 50
SELECT_SAMPLES = 200
DRAIN_SHARE_TARGET = 0.5
LATENCY_P50_TARGET_MS = 3.0

# drain_once's counters: (key, figure, unit, scale, what).
COUNTERS = (("commits", "commits_per_1k_jobs", "commits", 1000,
             "transactions committed in the database per 1,000 jobs"),
            ("python_cpu_us", "python_cpu_us_per_job", "us/job", 1,
             "worker process CPU (worker and harness)"),
            ("postgres_cpu_us", "postgres_cpu_us_per_job", "us/job", 1,
             "CPU of the worker's PostgreSQL backends"))

Traffic = dict[str, dict[str, int]]


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    with ExitStack() as stack:
        proxies = {name: stack.enter_context(delay_proxy(server_dsn, ms))
                   for name, ms in CONFIGS.items() if ms is not None}
        _run_drains(server_dsn, proxies, sizes, results)
        _run_latencies(server_dsn, proxies, sizes, results)


def select_round_trip_ms(server_dsn: str, proxy: ProxyProcess | None) -> float:
    """Median ``SELECT 1`` round trip in ms, through ``proxy`` (None: direct)."""
    dsn = server_dsn if proxy is None else proxy.dsn(server_dsn)
    samples: list[float] = []
    with psycopg.connect(dsn, autocommit=True, application_name="bench-hop-select") as conn:
        conn.execute("SELECT 1")
        for _ in range(SELECT_SAMPLES):
            start = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _rotated(names: list[str], turn: int) -> list[str]:
    shift = turn % len(names)
    return names[shift:] + names[:shift]


def _through(proxy: ProxyProcess | None) -> Callable[[str], str] | None:
    return None if proxy is None else proxy.dsn


def _traffic_delta(before: Traffic, after: Traffic) -> Traffic:
    return {label: {key: value - before.get(label, {}).get(key, 0)
                    for key, value in row.items()} for label, row in after.items()}


def _run_drains(server_dsn: str, proxies: dict[str, ProxyProcess], sizes: Sizes,
                results: Results) -> None:
    n, rounds = sizes.hop_drain, sizes.hop_rounds
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    cpus: dict[str, list[float]] = {name: [] for name in proxies}
    trips: dict[str, list[float]] = {name: [] for name in proxies}
    counts: dict[str, dict[str, list[float]]] = {name: {} for name in CONFIGS}
    selects: dict[str, list[float]] = {name: [] for name in CONFIGS}
    sessions: dict[str, dict[str, dict[str, float]]] = {}
    scratch = Results(mode="scratch")
    for turn in range(rounds):
        for name in _rotated(list(CONFIGS), turn):
            proxy = proxies.get(name)
            selects[name].append(select_round_trip_ms(server_dsn, proxy))
            before = proxy.stats() if proxy else {}
            cpu_before = proxy.cpu_seconds() if proxy else 0.0
            counters: dict[str, float] = {}
            rate, _ = drain_once(server_dsn, "async", CONCURRENCY, n, scratch, quiet=True,
                                 worker_dsn=_through(proxy), counters=counters)
            rates[name].append(rate)
            for key, value in counters.items():
                counts[name].setdefault(key, []).append(value)
            if proxy is None:
                continue
            cpus[name].append((proxy.cpu_seconds() - cpu_before) / n * 1e6)
            traffic = _traffic_delta(before, proxy.stats())
            trips[name].append(sum(row["up_chunks"] for row in traffic.values()) / n * 1000)
            sessions[name] = _per_session(traffic, n)
    for name, values in selects.items():
        results.add(f"hop_select1_{name}", statistics.median(values), "ms",
                    f"median of {SELECT_SAMPLES} SELECT 1 on one connection, before each "
                    "drain; median of the rounds")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    note = f"{n:,} async no-op jobs, concurrency {CONCURRENCY}, median of {rounds}"
    for name, median in medians.items():
        spread = ", ".join(f"{v:,.0f}" for v in rates[name])
        where = "direct" if name == "direct" else f"worker through the {name} proxy"
        results.add(f"hop_drain_{name}", median, "jobs/s", f"{note} ({spread}), {where}")
    for name in ("proxy0", *DELAYED):
        share = medians[name] / medians["direct"]
        verdict = ""
        if name == "1ms":
            met = "met" if share >= DRAIN_SHARE_TARGET else "not met"
            verdict = f"; target >= {DRAIN_SHARE_TARGET:.2f}: {met}"
        results.add(f"hop_drain_share_{name}", share, "x", f"{name} / direct{verdict}")
    for name in DELAYED:
        results.add(f"hop_drain_vs_proxy0_{name}", medians[name] / medians["proxy0"], "x",
                    f"{name} / proxy0")
    for name, values in cpus.items():
        results.add(f"hop_proxy_cpu_us_per_job_{name}", statistics.median(values),
                    "us/job", "proxy process CPU over a drain, median")
    every = [value for values in cpus.values() for value in values]
    results.add("hop_proxy_cpu_us_per_job", statistics.median(every), "us/job",
                "proxy process CPU over a drain, median of every proxied drain")
    for name, values in trips.items():
        results.add(f"hop_round_trips_per_1k_jobs_{name}", statistics.median(values),
                    "trips", "the worker's writes to the server per 1,000 jobs, median")
    for key, figure, unit, scale, what in COUNTERS:
        for name in CONFIGS:
            if key in counts[name]:
                results.add(f"hop_{figure}_{name}", statistics.median(counts[name][key]) * scale,
                            unit, f"{what}, median")
    results.details["hop_drain_sessions"] = sessions


def _per_session(traffic: Traffic, n: int) -> dict[str, dict[str, float]]:
    """Writes and reads per job (or sample) of each application_name seen."""
    return {label: {"connections": row["connections"], "writes_per_job": row["up_chunks"] / n,
                    "reads_per_job": row["down_chunks"] / n}
            for label, row in traffic.items() if row["up_chunks"]}


def _run_latencies(server_dsn: str, proxies: dict[str, ProxyProcess], sizes: Sizes,
                   results: Results) -> None:
    n, rounds = sizes.hop_latency, sizes.hop_rounds
    names = [*CONFIGS, LOCAL_PRODUCER]
    samples: dict[str, list[float]] = {name: [] for name in names}
    sessions: dict[str, dict[str, dict[str, float]]] = {}
    for turn in range(rounds):
        for name in _rotated(names, turn):
            worker = proxies["1ms"] if name == LOCAL_PRODUCER else proxies.get(name)
            producer = None if name == LOCAL_PRODUCER else worker
            before = worker.stats() if worker else {}
            samples[name].extend(wake_up_samples(server_dsn, n, worker_dsn=_through(worker),
                                                 producer_dsn=_through(producer)))
            if worker is not None:  # per sample, the warm-up job included
                sessions[name] = _per_session(_traffic_delta(before, worker.stats()), n + 1)
    results.details["hop_latency_sessions"] = sessions
    for name in names:
        where = {"direct": "direct", LOCAL_PRODUCER: "worker 1 ms away, producer direct"
                 }.get(name, f"worker and producer through the {name} proxy")
        for label, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            value = percentile(samples[name], share)
            verdict = ""
            if name == "1ms" and label == "p50":
                met = "met" if value <= LATENCY_P50_TARGET_MS else "not met"
                verdict = f"; target <= {LATENCY_P50_TARGET_MS:.0f} ms: {met}"
            results.add(f"hop_latency_{label}_{name}", value, "ms",
                        f"{len(samples[name])} samples over {rounds} rounds, {where}{verdict}")
