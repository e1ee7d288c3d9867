"""The shipped Grafana dashboard and alert rules against a real Prometheus.

A ``pgqueue worker`` process runs a small mixed load (successes, retries,
failures, a reclaimed job, unclaimable jobs) while Debian's Prometheus scrapes
its ``/metrics`` every second under two scrape jobs (two deployments), with the
rules file loaded; the test process, the producer, serves its own ``/metrics``
as the README tells applications to, scraped as a third job. Then every
panel's queries, template variables substituted, run through the HTTP API: each
returns data, and the ones whose events occurred are non-zero. promtool checks
the rules, runs their unit tests and lints the worker's metrics.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.observability import metrics
from pgqueue.observability.grafana import dashboard_json, rules_path
from tests.integration.test_metrics import free_port
from tests.support import scalar, wait_until
from tests.system.prometheus import Prometheus, prometheus

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RULES_TEST = Path(__file__).with_name("prometheus-rules-test.yml")
JOBS = ("pgqueue-a", "pgqueue-b")  # two scrape jobs of one worker: two "deployments"
PRODUCERS = "app-producers"  # the test process's own endpoint
RATE_INTERVAL = "5s"  # Grafana's $__rate_interval for a 1 s scrape interval
# Targets whose events this load never produces: data (zeros), but no non-zero value.
QUIET = {
    ("Worst lag", "A"),  # claimable queues are drained within a sample or two
    ("Throughput by outcome", "D"), ("Throughput by outcome", "E"),  # cancelled, lost
    ("Throughput by outcome", "F"),  # snoozed: the load's tasks never snooze
    ("Retries, reclaims and lost outcomes", "C"),
    ("Service errors", "A"),
    ("History pruned", "A"), ("History pruned", "B"),  # no history old enough to prune
}


def promtool(binary: str, *args: str, stdin: str | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True,
                          timeout=120, cwd=cwd, check=False)


def test_rules_pass_promtool_check_and_their_unit_tests(promtool_binary: str,
                                                        tmp_path: Path) -> None:
    checked = promtool(promtool_binary, "check", "rules", str(rules_path()))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    shutil.copy(rules_path(), tmp_path / "prometheus-rules.yml")
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    tested = promtool(promtool_binary, "test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def start_worker(dsn: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pgqueue", "worker", "--app", "tests.apps.metrics_app:tasks",
         "--dsn", dsn, "--concurrency", "3", "--poll-interval", "0.5",
         "--heartbeat-interval", "0.3", "--stall-timeout", "3", "--metrics-port", str(port)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"),
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PGQUEUE_METRICS_STATS_INTERVAL": "1"})


def enqueue_wave(conn: psycopg.Connection[Any]) -> int:
    jobs = ([{"task": "mx.ok", "args": {"seconds": 0.3}}] * 8
            + [{"task": "mx.flaky", "args": {"fail_attempts": n}, "max_attempts": 2}
               for n in (0, 0, 1, 1, 2)])
    return len(pgqueue.enqueue_many(conn, [{**j, "queue": "mx_fine" if j["task"] == "mx.ok"
                                            else "mx_mixed"} for j in jobs]))


def bounded_queue(conn: psycopg.Connection[Any], server: Prometheus) -> None:
    """A bounded queue whose task nobody runs: two enqueues past its warn_depth, then
    two refusals. Each counter is scraped once between its two steps: a series born
    at 1 shows no increase."""
    pgqueue.set_max_depth(conn, "mx_bounded", 3)
    pgqueue.set_warn_depth(conn, "mx_bounded", 1)
    pgqueue.enqueue(conn, "mx.unknown", queue="mx_bounded")  # depth 1: at its warn_depth

    def past_warn_depth() -> None:
        pgqueue.enqueue(conn, "mx.unknown", queue="mx_bounded")

    def refused() -> None:
        with pytest.raises(pgqueue.QueueFullError):
            pgqueue.enqueue(conn, "mx.unknown", queue="mx_bounded")

    for metric, step in (("pgqueue_enqueue_over_warn_depth_total", past_warn_depth),
                         ("pgqueue_enqueue_refused_total", refused)):
        step()
        wait_until(lambda m=metric: server.query(f'{m}{{queue="mx_bounded"}}'),
                   timeout=60, message=f"{metric} scraped")
        step()


def run_load(dsn: str, server: Prometheus) -> int:
    """The mixed load; returns how many jobs were enqueued after the leader's first read."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        pgqueue.enqueue(conn, "mx.ok", {"seconds": 0}, queue="mx_fine")
    # The leader has read the database once: its enqueue count starts there.
    wait_until(lambda: server.query('pgqueue_queue_jobs{queue="mx_fine", job="pgqueue-a"}'),
               timeout=90, message="the leader's queue gauges in Prometheus")
    counted = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Jobs no worker can run: an unknown task in a served queue, and a queue
        # nobody serves (it must still be offered by the queue variable).
        pgqueue.enqueue(conn, "mx.unknown", queue="mx_mixed")
        pgqueue.enqueue(conn, "mx.ok", {"seconds": 0}, queue="mx_orphan")
        bounded_queue(conn, server)
        # A job claimed by a worker that died: the reaper reclaims it.
        with conn.transaction():
            stalled = pgqueue.enqueue(conn, "mx.ok", {"seconds": 0}, queue="mx_fine")
            conn.execute("UPDATE pgqueue.jobs SET state = 'running', attempt = 1, "
                     "started_at = now() - interval '1 hour', worker_id = gen_random_uuid(), "
                         "heartbeat_at = now() - interval '1 hour' WHERE id = %s",
                         [stalled])
        counted += 3 + 3  # mx_mixed, mx_orphan, the stalled one; the three bounded ones
        for _ in range(3):
            counted += enqueue_wave(conn)
            wait_until(lambda: scalar(dsn, "SELECT count(*) FROM pgqueue.jobs "
                                           "WHERE task <> 'mx.unknown' AND queue <> 'mx_orphan'")
                       < 5, timeout=90, message="a wave mostly done")
    wait_until(lambda: scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 2 + 3, timeout=90,
               message="every claimable job finished")  # the unclaimable and bounded ones
    return counted


def substitute(expr: str, job: str = "pgqueue-a", queue: str = ".*") -> str:
    for name, value in (("$__rate_interval", RATE_INTERVAL), ("$job", job),
                        ("$instance", ".*"), ("$queue", queue)):
        expr = expr.replace(name, value)
    return expr


def values(series: list[dict[str, Any]]) -> list[float]:
    """Every value of the series, NaN (0/0, an idle histogram) left out."""
    return [f for s in series for _, v in s["values"] if not math.isnan(f := float(v))]


def check_panels(server: Prometheus, start: float, end: float) -> None:
    for panel in json.loads(dashboard_json())["panels"]:
        for target in panel["targets"]:
            key = (panel["title"], target["refId"])
            series = server.query_range(substitute(target["expr"]), start, end)
            assert series, f"no data: {key} {target['expr']}"
            if key not in QUIET:
                assert any(v != 0 for v in values(series)), f"only zeros: {key} {target['expr']}"


def check_variables_and_traps(server: Prometheus, start: float, end: float) -> None:
    panels = {p["title"]: p for p in json.loads(dashboard_json())["panels"]}

    def expr(title: str, ref: str = "A") -> str:
        return str(next(t["expr"] for t in panels[title]["targets"] if t["refId"] == ref))

    jobs = set(server.api("label/job/values", **{"match[]": "pgqueue_worker_slots"}))
    assert set(JOBS) <= jobs
    queues = set(server.api("label/queue/values",
                            **{"match[]": 'pgqueue_queue_jobs{job=~"pgqueue-a"}'}))
    started = set(server.api("label/queue/values", **{"match[]": "pgqueue_jobs_started_total"}))
    assert {"mx_fine", "mx_mixed", "mx_orphan"} <= queues and "mx_orphan" not in started
    # A queue that never failed still has a finished rate.
    fine = server.query_range(substitute(expr("Jobs/s finished"), queue="mx_fine"), start, end)
    assert any(v > 0 for v in values(fine))
    # Two deployments with the same queue names stay apart.
    depth = server.query_range(substitute(expr("Queue depth by state"), job="pgqueue-.*"),
                               start, end)
    assert {s["metric"]["job"] for s in depth} == set(JOBS)
    # Slot use never goes over 100 %.
    use = values(server.query_range(substitute(expr("Slot use")), start, end))
    assert use and max(use) <= 1.0, max(use)
    # The lag of queues holding unclaimable jobs is told apart.
    lag = values(server.query_range(substitute(expr("Worst lag", "B")), start, end))
    assert max(lag) > 0


def check_rules(server: Prometheus) -> None:
    groups = server.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 6 and all(r["health"] == "ok" for r in rules), rules

    def alerts() -> set[tuple[str, str, str]]:
        return {(a["labels"]["alertname"], a["labels"].get("queue", ""), a["state"])
                for a in server.api("alerts")["alerts"]
                if a["labels"].get("job") == "pgqueue-a"}

    wait_until(lambda: {("PgqueueStalledReclaims", "mx_fine", "firing"),
                        ("PgqueueNoWorkerForQueue", "mx_orphan", "pending"),
                        ("PgqueueNoWorkerForQueue", "mx_mixed", "pending")} <= alerts(),
               timeout=60, message="the reclaim alert firing, the unclaimable ones pending")


def test_dashboard_and_rules_on_real_prometheus(clean_db: str, tmp_path: Path,
                                                prometheus_binary: str,
                                                promtool_binary: str) -> None:
    port = free_port()
    worker = start_worker(clean_db, port, tmp_path / "worker.log")
    producer = metrics.serve(0, "127.0.0.1")  # this process enqueues: its own endpoint
    targets = {**{job: [f"127.0.0.1:{port}"] for job in JOBS},
               PRODUCERS: [f"127.0.0.1:{producer.port}"]}
    try:
        with prometheus(prometheus_binary, targets, rule_files=[rules_path()]) as server:
            wait_until(server.targets_up, timeout=90, message="both scrape jobs up")
            start = time.time()
            counted = run_load(clean_db, server)
            finished = scalar(clean_db, "SELECT count(*) FROM pgqueue.finished_jobs")
            # Prometheus has scraped the final counts (the enqueue count is one
            # leader read late).
            wait_until(lambda: (r := server.query(
                'sum(pgqueue_jobs_succeeded_total{job="pgqueue-a"})'
                ' + sum(pgqueue_jobs_failed_total{job="pgqueue-a"})'))
                and float(r[0]["value"][1]) == finished, timeout=60,
                message="the final outcome counts scraped")
            # The first job counts too when the leader's first read came before it.
            wait_until(lambda: (r := server.query(
                'sum(pgqueue_queue_enqueued_total{job="pgqueue-a"})'))
                and counted <= float(r[0]["value"][1]) <= counted + 1, timeout=60,
                message=f"{counted} enqueued jobs counted by the leader")
            end = time.time()
            check_panels(server, start, end)
            check_variables_and_traps(server, start, end)
            check_rules(server)
        text = fetch_metrics(port)
    finally:
        producer.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        finally:
            worker.kill()
    linted = promtool(promtool_binary, "check", "metrics", stdin=text)
    assert linted.returncode == 0 and not (linted.stdout + linted.stderr).strip(), (
        linted.stdout + linted.stderr)


def fetch_metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())
