"""The benchmark suite runs end to end and reports every figure (never its speed)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

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
]


@pytest.mark.timeout(120)
def test_quick_smoke_run_reports_every_figure(admin_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "all", "--quick", "--smoke",
         "--dsn", admin_dsn, "--out", str(out)],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    result = json.loads(out.read_text())
    assert result["mode"] == "smoke"
    figures = result["figures"]
    missing = [name for name in FIGURES if name not in figures]
    assert not missing, f"figures missing from the result file: {missing}"
    for name in FIGURES:
        value = figures[name]["value"]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (name, value)
        assert figures[name]["unit"]
        # One printed line per figure: "name value unit".
        assert any(line.startswith(f"{name} ") for line in proc.stdout.splitlines()), name
    # The queue_stats plan is summarised in the result file, down to its scans.
    plan = result["details"]["stats_plan"]
    assert plan["node_types"] and plan["statements"], plan
