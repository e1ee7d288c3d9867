"""The benchmark suite runs end to end and reports every figure (never its speed)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIGURES = [
    "enqueue_bulk", "enqueue_single_pgqueue", "enqueue_single_plain_insert",
    "enqueue_single_ratio",
    "drain_async_c10", "drain_async_c50", "drain_sync_c10", "drain_sync_c50",
    "drain_sleep10ms_c10", "drain_sleep10ms_c50",
    "drain_async_c50_python_cpu", "drain_async_c50_commits",
    "drain_processes1_c50", "drain_processes2_c50", "drain_processes_ratio",
    "latency_p50", "latency_p95", "latency_p99",
    "backlog_small", "backlog_large", "backlog_ratio",
    "stats_queue_stats", "stats_history_size",
    "bloat_table_empty", "bloat_table_after", "bloat_table_vacuumed", "bloat_indexes_after",
    "retention_drain_without", "retention_drain_with", "retention_drain_after",
    "retention_prune_rate", "retention_statement_p50", "retention_statement_max",
    "retention_lock_longest", "retention_heap_before", "retention_heap_vacuumed",
]


# What `python -m benchmarks peers` reports for each peer, and for pgqueue beside them.
PEERS = ["procrastinate", "pgqueuer_psycopg", "pgqueuer_asyncpg"]
PEER_FIGURES = ["enqueue_bulk", "drain_c10", "drain_c50",
                "latency_p50", "latency_p95", "latency_p99", "latency_mean"]
PEER_CHECKS = ["enqueue_bulk", "drain_c10", "drain_c50", "latency"]
RATIOS = ["enqueue_bulk", "drain_c10", "drain_c50", "latency_p50", "latency_p95", "latency_p99"]
# The `bench` extra's modules the peers need.
PEER_MODULES = ["procrastinate", "pgqueuer", "asyncpg"]


def _run_module(module: str, args: list[str], *,
                timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` from the checkout; it must exit 0."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _run_benchmarks(args: list[str], admin_dsn: str, out: Path,
                    timeout: float) -> subprocess.CompletedProcess[str]:
    return _run_module("benchmarks", [*args, "--dsn", admin_dsn, "--out", str(out)],
                       timeout=timeout)


def _printed(stdout: str, prefix: str) -> dict[str, str]:
    """The value printed on each ``name value unit`` line whose name has ``prefix``."""
    return {line.split()[0]: line.split()[1] for line in stdout.splitlines()
            if line.startswith(prefix)}


def _check_figure(figures: dict[str, Any], name: str, stdout: str) -> None:
    assert name in figures, f"figure {name} missing from the result file"
    value = figures[name]["value"]
    assert isinstance(value, float) and math.isfinite(value), (name, value)
    # A latency can be 0 (the handler started before the producer saw its commit
    # return), and so can the longest pruning statement the server was seen
    # running (sampled every 10 ms: at the quick size every statement can be
    # shorter); every other figure is a rate or a duration of real work.
    may_be_zero = "latency" in name or name == "retention_lock_longest"
    assert value >= 0 if may_be_zero else value > 0, (name, value)
    assert figures[name]["unit"], name
    # One printed line per figure: "name value unit".
    assert any(line.startswith(f"{name} ") for line in stdout.splitlines()), name


def test_quick_smoke_run_reports_every_figure(admin_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = _run_benchmarks(["all", "--quick", "--smoke"], admin_dsn, out, timeout=270)

    result = json.loads(out.read_text())
    assert result["mode"] == "smoke"
    figures = result["figures"]
    missing = [name for name in FIGURES if name not in figures]
    assert not missing, f"figures missing from the result file: {missing}"
    for name in FIGURES:
        _check_figure(figures, name, proc.stdout)
    # The queue_stats plan is summarised in the result file, down to its scans.
    plan = result["details"]["stats_plan"]
    assert plan["node_types"] and plan["statements"], plan


def test_peers_smoke_run_reports_every_peer_figure(admin_dsn: str, tmp_path: Path) -> None:
    missing = [m for m in PEER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        message = (f"the bench extra's peers are not importable ({', '.join(missing)}): "
                   "pip install -e '.[bench]'")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    out = tmp_path / "results.json"
    proc = _run_benchmarks(["peers", "--quick", "--smoke"], admin_dsn, out, timeout=270)

    result = json.loads(out.read_text())
    assert result["mode"] == "smoke"
    details = result["details"]
    assert not details.get("peers_failed"), details.get("peers_failed")
    assert not details.get("peers_skipped"), details.get("peers_skipped")
    figures = result["figures"]
    ours = ["enqueue_bulk", "drain_async_c10", "drain_async_c50",
            "latency_p50", "latency_p95", "latency_p99"]
    for name in ours:
        _check_figure(figures, name, proc.stdout)
    for peer in PEERS:
        for figure in PEER_FIGURES:
            _check_figure(figures, f"{peer}_{figure}", proc.stdout)
        for figure in RATIOS:
            _check_figure(figures, f"ratio_{figure}_{peer}", proc.stdout)
        # Every measurement found all the jobs it made finished in the peer's own tables.
        checks = details["peers_verified"][peer]
        assert sorted(checks) == sorted(PEER_CHECKS), (peer, checks)
        for name, check in checks.items():
            assert check["jobs"] > 0 and check["verified"] == check["jobs"], (peer, name, check)


POOLER_FIGURES = [
    *(f"pooler_drain_{mode}_c{c}" for c in (10, 50) for mode in ("direct", "transaction", "ratio")),
    *(f"pooler_latency_{mode}_{stat}" for mode in ("direct", "listen", "poll")
      for stat in ("p50", "p95", "p99", "mean")),
    "pooler_latency_listen_p50_ratio", "pooler_latency_poll_p50_ratio",
]


def test_pooler_smoke_run_reports_every_figure(admin_dsn: str, tmp_path: Path,
                                               pgbouncer_binary: str) -> None:
    out = tmp_path / "results.json"
    proc = _run_benchmarks(["pooler", "--smoke"], admin_dsn, out, timeout=270)

    result = json.loads(out.read_text())
    assert result["mode"] == "smoke"
    for name in POOLER_FIGURES:
        _check_figure(result["figures"], name, proc.stdout)


def test_tracing_benchmark_reports_every_figure_and_what_each_mode_traces(
        admin_dsn: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.tracing", "--dsn", admin_dsn, "--jobs", "60",
         "--rounds", "1"], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=270)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    for name in ("tracing_off_c50", "tracing_spans_c50", "tracing_jobs_c50", "tracing_all_c50",
                 "tracing_spans_ratio", "tracing_jobs_ratio", "tracing_all_ratio"):
        assert name in rows, name
    # One consumer span per job; the worker's own statements only with --otel-psycopg all.
    assert "60 jobs, 60 spans" in rows["tracing_spans_c50"]
    assert "60 jobs, 60 spans" in rows["tracing_jobs_c50"]
    spans = int(rows["tracing_all_c50"].split("jobs, ")[1].split(" spans")[0].replace(",", ""))
    assert spans > 60


def test_backpressure_benchmark_reports_every_figure(admin_dsn: str) -> None:
    """``python -m benchmarks.backpressure`` at a tiny size: every figure, finite."""
    proc = _run_module("benchmarks.backpressure", ["--dsn", admin_dsn, "--jobs", "20",
                                                   "--many", "200", "--rounds", "1",
                                                   "--depths", "50"],
                       timeout=270)
    lines = _printed(proc.stdout, "backpressure_")
    for name in ("single_before", "single_unlimited", "single_bounded_50", "many_unlimited",
                 "many_bounded_50", "single_unlimited_ratio", "many_bounded_50_ratio"):
        value = float(lines[f"backpressure_{name}"].replace(",", ""))
        assert math.isfinite(value) and value > 0, (name, value)


def test_key_modes_benchmark_reports_every_figure(admin_dsn: str) -> None:
    """``python -m benchmarks.key_modes`` at a tiny size: every figure, finite."""
    proc = _run_module("benchmarks.key_modes", ["--dsn", admin_dsn, "--jobs", "100",
                                                "--rounds", "1", "--history", "500"],
                       timeout=270)
    lines = _printed(proc.stdout, "key_modes_")
    for name in ("plain", "tags_meta", "unique_key", "unique_for_new", "unique_for_held",
                 "debounce_new", "debounce_push", "tags_meta_ratio", "debounce_push_ratio"):
        value = float(lines[f"key_modes_{name}"].replace(",", ""))
        assert math.isfinite(value) and value > 0, (name, value)


def test_tags_benchmark_runs_every_case_and_the_drain(admin_dsn: str) -> None:
    """``python -m benchmarks.tags`` at a tiny size: the fill, every case, both drains."""
    proc = _run_module("benchmarks.tags", ["--dsn", admin_dsn, "--rows", "20000", "--drain",
                                           "--drain-jobs", "100", "--drain-rounds", "1"],
                       timeout=270)
    assert "filled finished_job_tags in" in proc.stdout
    for case in ("rare ", "mid_clustered ", "common ", "absent "):
        assert any(line.startswith(case) and "list_jobs" in line
                   for line in proc.stdout.splitlines()), case
    assert "finished_job_tags_pkey" in proc.stdout  # the plans walk the tag table
    assert "drain median: without" in proc.stdout


CLI_CONFIGS = ["inprocess", "default", "warning", "nometrics", "bare", "debug"]


def test_cli_smoke_run_reports_every_configuration_and_ratio(admin_dsn: str,
                                                             tmp_path: Path) -> None:
    """``python -m benchmarks cli``: real ``pgqueue worker`` subprocesses in every
    configuration against the in-process drain, each figure and ratio printed."""
    out = tmp_path / "results.json"
    proc = _run_benchmarks(["cli", "--quick", "--smoke"], admin_dsn, out, timeout=270)
    figures = json.loads(out.read_text())["figures"]
    for config in CLI_CONFIGS:
        _check_figure(figures, f"cli_{config}_c50", proc.stdout)
        _check_figure(figures, f"cli_{config}_cpu", proc.stdout)
        if config != "inprocess":
            _check_figure(figures, f"cli_{config}_ratio", proc.stdout)


def test_ceiling_smoke_run_reports_pgbench_the_drain_and_the_shares(
        admin_dsn: str, tmp_path: Path, pgbench_binary: str) -> None:
    """``python -m benchmarks ceiling``: pgbench runs pgqueue's claim and outcome
    statements with 1 and 2 connections, then the drain, in one sitting."""
    out = tmp_path / "results.json"
    proc = _run_benchmarks(["ceiling", "--quick", "--smoke"], admin_dsn, out, timeout=270)
    figures = json.loads(out.read_text())["figures"]
    for name in ("ceiling_pgbench_c1", "ceiling_pgbench_c2", "ceiling_pgbench_c2_waited",
                 "ceiling_notify_cost", "ceiling_drain_async_c50", "ceiling_share_c1",
                 "ceiling_share_c2"):
        _check_figure(figures, name, proc.stdout)
@pytest.mark.timeout(240)
def test_weights_benchmark_reports_every_figure(admin_dsn: str) -> None:
    """``python -m benchmarks.weights --quick`` at a tiny size: every figure, finite."""
    proc = _run_module("benchmarks.weights", ["--quick", "--dsn", admin_dsn, "--jobs", "300",
                                              "--large", "3000"],
                       timeout=230)
    lines = _printed(proc.stdout, "weights_")
    names = [f"share_{q}" for q in ("critical", "default", "low")] + [
        "idle_share_default", "idle_share_low", "idle_drain_c50", "drain_weighted_c50",
        "drain_priority_c50", "drain_ratio"] + [
        f"claim_{order}_{size}{suffix}" for order in ("weighted", "priority")
        for size in ("small", "large") for suffix in ("", "_buffers", "_statement")]
    for name in names:
        value = float(lines[f"weights_{name}"].replace(",", ""))
        assert math.isfinite(value) and value > 0, (name, value)
    assert "weights_share_worst_error" in lines


@pytest.mark.timeout(240)
def test_fair_benchmark_reports_every_figure(admin_dsn: str) -> None:
    """``python -m benchmarks.fair --quick`` at a tiny size: every figure, finite."""
    proc = _run_module("benchmarks.fair", ["--quick", "--dsn", admin_dsn, "--jobs", "12000"],
                       timeout=230)
    lines = _printed(proc.stdout, "fair_")
    names = [f"claim_{variant}_{label}{suffix}" for variant in ("fair", "plain")
             for label in ("keys1", "keys100", "keys10000", "keys100_small")
             for suffix in ("", "_statement", "_buffers")]
    names += [f"claim_ratio_{label}" for label in ("keys1", "keys100", "keys10000")]
    names += ["light_claims_fair", "light_claims_plain"]
    for name in names:
        value = float(lines[f"fair_{name}"].replace(",", ""))
        assert math.isfinite(value) and value > 0, (name, value)




@pytest.mark.timeout(300)
def test_fleet_benchmark_reports_every_figure(admin_dsn: str) -> None:
    """``python -m benchmarks.fleet --smoke`` on the test server: every figure, finite."""
    proc = _run_module("benchmarks.fleet", ["--smoke", "--dsn", admin_dsn], timeout=280)
    lines = _printed(proc.stdout, "fleet_")
    positive = [f"drain_p{n}" for n in (1, 2)] + [
        f"{figure}_p{n}" for figure in ("pg_cpu_per_job", "worker_cpu_per_job", "connections")
        for n in (1, 2)] + [f"enqueue_{p}_listeners{n}" for p in ("p50", "p95") for n in (0, 2)]
    positive += ["queues20_drain", "idle_xacts_per_s_p2", "queues20_idle_xacts_per_s",
                 "drain_p1_c8", "worker_cpu_per_job_p1_c8"]
    for name in positive:
        value = float(lines[f"fleet_{name}"].replace(",", ""))
        assert math.isfinite(value) and value > 0, (name, value)
    for name in ("lock_waiters_max_p2", "lock_wait_share_p2", "idle_pg_cpu_p2",
                 "idle_worker_cpu_p2", "queues20_idle_worker_cpu"):
        value = float(lines[f"fleet_{name}"].replace(",", ""))
        assert math.isfinite(value) and value >= 0, (name, value)


@pytest.mark.timeout(240)
def test_transactional_benchmark_reports_every_case(admin_dsn: str) -> None:
    """``python -m benchmarks.transactional`` at a tiny size: every case, a positive rate."""
    proc = _run_module("benchmarks.transactional", ["--dsn", admin_dsn, "--jobs", "300",
                                                    "--rounds", "1"],
                       timeout=230)
    rates = json.loads(proc.stdout.strip().splitlines()[-1])
    for case in ("plain_async", "tx_async_empty", "tx_async_insert", "own_async_insert",
                 "tx_sync_empty"):
        assert math.isfinite(rates[case]) and rates[case] > 0, (case, rates)


@pytest.mark.timeout(240)
def test_queue_named_benchmark_reports_every_figure(admin_dsn: str) -> None:
    """``python -m benchmarks.queue_named --quick``: every figure, finite."""
    proc = _run_module("benchmarks.queue_named", ["--quick", "--dsn", admin_dsn], timeout=230)
    lines = _printed(proc.stdout, "queue_named_")
    names = [f"claim_{variant}_q{n}{suffix}" for variant in ("across", "named")
             for n in (1, 10, 100) for suffix in ("", "_statement")]
    names += [f"{figure}_q{n}" for figure in ("ratio", "empty_claim") for n in (1, 10, 100)]
    for name in names:
        value = float(lines[f"queue_named_{name}"].replace(",", ""))
        assert math.isfinite(value) and value > 0, (name, value)


@pytest.mark.timeout(300)
def test_reports_benchmark_reports_every_figure(admin_dsn: str) -> None:
    """``python -m benchmarks.reports`` at a tiny size: every figure, finite."""
    proc = _run_module("benchmarks.reports", ["--dsn", admin_dsn, "--jobs", "40", "--rounds", "1",
                                              "--concurrency", "5", "--seconds", "0.5"],
                       timeout=270)
    lines = _printed(proc.stdout, "reports_")
    for name in ("drain_plain", "drain_progress", "set_progress_us", "attempts_snooze",
                 "attempts_retry", "load_reports_per_s", "load_rows_per_s"):
        value = float(lines[f"reports_{name}"].replace(",", ""))
        assert math.isfinite(value) and value > 0, (name, value)
    assert math.isfinite(float(lines["reports_cost_per_update_us"].replace(",", "")))


HOP_CONFIGS = ["direct", "proxy0", "0_25ms", "0_5ms", "1ms"]
HOP_DELAYED = ["0_25ms", "0_5ms", "1ms"]
HOP_FIGURES = [
    *(f"hop_select1_{config}" for config in HOP_CONFIGS),
    *(f"hop_drain_{config}" for config in HOP_CONFIGS),
    *(f"hop_drain_share_{config}" for config in ["proxy0", *HOP_DELAYED]),
    *(f"hop_drain_vs_proxy0_{config}" for config in HOP_DELAYED),
    *(f"hop_{counter}_{config}" for counter in ("commits_per_1k_jobs", "python_cpu_us_per_job")
      for config in HOP_CONFIGS),
    *(f"hop_{figure}_{config}" for figure in ("proxy_cpu_us_per_job", "round_trips_per_1k_jobs")
      for config in ["proxy0", *HOP_DELAYED]),
    "hop_proxy_cpu_us_per_job",
    *(f"hop_latency_{stat}_{config}" for stat in ("p50", "p95", "p99")
      for config in [*HOP_CONFIGS, "1ms_local_producer"]),
]


def test_hop_smoke_run_reports_every_configuration(admin_dsn: str, tmp_path: Path) -> None:
    """``python -m benchmarks hop``: drain and idle latency direct, through a 0 ms
    delay proxy and 0.25 / 0.5 / 1 ms each way, with the proxy's cost and the
    worker's round trips per job."""
    out = tmp_path / "results.json"
    proc = _run_benchmarks(["hop", "--quick", "--smoke"], admin_dsn, out, timeout=270)
    result = json.loads(out.read_text())
    assert result["mode"] == "smoke"
    for name in HOP_FIGURES:
        _check_figure(result["figures"], name, proc.stdout)
    # The proxy saw the worker's sessions by name, during the drains and the latency runs.
    for details in ("hop_drain_sessions", "hop_latency_sessions"):
        for config in ["proxy0", *HOP_DELAYED]:
            sessions = result["details"][details][config]
            assert {"pgqueue-claim", "pgqueue-listener"} <= set(sessions), (details, sessions)
