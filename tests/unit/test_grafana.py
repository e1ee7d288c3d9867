"""The shipped Grafana dashboard: valid JSON, sane layout, and every query names
a metric the worker really exports (checked against a live registry)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pgqueue import events
from pgqueue.cli import main
from pgqueue.observability import metrics
from pgqueue.observability.grafana import dashboard_json, rules_path, rules_yaml
from pgqueue.producer import hooks
from pgqueue.producer.hooks import enqueue_scope
from pgqueue.producer.params import new_job
from pgqueue.types import Job
from tests.support import cli_runner

METRIC = re.compile(r"\b(pgqueue_[a-z_]+)\b")
NAME_REGEX = re.compile(r'__name__=~"([^"]+)"')


def exported_samples() -> set[str]:
    """Sample names in the registry after one event of every kind went through."""
    now = datetime.now(UTC)
    job = Job(1, "gq", "g.task", {}, 0, 1, 3, now - timedelta(seconds=1), now, now)
    enqueue_scope([new_job("g.task", queue="gq")]).done(1)
    observer = metrics.WorkerMetrics()
    for event in (
        events.WorkerStarted("w", ("gq",), 2), events.JobStarted("w", job),
        events.AttemptEnded("w", job),
        *(events.JobFinished("w", job, outcome, 0.1)
          for outcome in ("succeeded", "retried", "snoozed", "failed", "cancelled")),
        events.JobLost("w", job, "succeeded"),
        events.JobsReclaimed("w", (1,), (), (events.ReclaimedJob(1, "gq", "g.task", 1,
                                                                  "queued"),)),
        events.ServiceError("w", "reaper", "boom"),
        events.JobsPruned("w", "gq", "succeeded", 3, 1),
    ):
        observer(event)
    metrics.apply_queue_stats([{"queue": "gq", "ready": 1, "scheduled": 0, "running": 0,
                                "failed": 0, "lag_seconds": 1.5, "unclaimable": 0,
                                "depth": 1, "max_depth": 10, "warn_depth": 5}])
    for refused in (True, False):
        hooks.announce_depth(hooks.QueueDepth("gq", 9, 2, 10, 5, refused=refused))
    text = generate_latest(REGISTRY).decode()
    observer(events.WorkerStopped("w"))
    metrics.clear_queue_gauges()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["definition"])
    return found


def test_dashboard_is_valid_json_with_a_sane_layout() -> None:
    dashboard = json.loads(dashboard_json())
    assert dashboard["title"] == "pgqueue" and dashboard["uid"] == "pgqueue"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("outcome", "depth", "lag", "run time", "wait", "retries", "reclaims",
                  "busy slots"):
        assert topic in titles


def metric_names(expr: str, exported: set[str]) -> set[str]:
    """The metric names an expression selects, name regexes matched against ``exported``."""
    names = set()
    for pattern in NAME_REGEX.findall(expr):
        matched = {name for name in exported if re.fullmatch(pattern, name)}
        assert matched, (pattern, expr)
        names |= matched
    names.update(METRIC.findall(NAME_REGEX.sub("", expr)))
    return names


def test_every_query_names_an_exported_metric() -> None:
    exported = exported_samples()
    for family in metrics.METRIC_NAMES:  # the documented list is what the registry has
        assert family in exported or f"{family}_count" in exported, family
    used = set()
    for expr in queries(json.loads(dashboard_json())):
        names = metric_names(expr, exported)
        assert names, expr
        used.update(names)
    assert used <= exported, used - exported
    # And the dashboard shows every metric family the worker exports.
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert set(metrics.METRIC_NAMES) <= families, set(metrics.METRIC_NAMES) - families


def test_cli_prints_the_dashboard() -> None:
    result = cli_runner().invoke(main, ["grafana-dashboard"])
    assert result.exit_code == 0
    assert json.loads(result.output) == json.loads(dashboard_json())


def test_import_asks_for_the_data_source_and_deployments_stay_apart() -> None:
    text = dashboard_json()
    dashboard = json.loads(text)
    (source,) = dashboard["__inputs"]
    assert source["type"] == "datasource" and source["pluginId"] == "prometheus"
    placeholder = "${" + source["name"] + "}"
    assert placeholder in text  # what the import replaces
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == placeholder
    assert list(variables) == ["datasource", "job", "instance", "queue"]
    # Queues from the leader's read of the database: a queue no worker started
    # jobs from is listed too.
    assert variables["queue"]["definition"].startswith("label_values(pgqueue_queue_jobs{")
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            if any(name in expr for name in ("pgqueue_jobs_enqueued_total",
                                             "pgqueue_enqueue_refused_total",
                                             "pgqueue_enqueue_over_warn_depth_total")):
                continue  # producers' own endpoints: their scrape job is the application's
            assert 'job=~"$job"' in expr, (panel["title"], expr)
            if "pgqueue_queue_" not in expr:  # the leader's gauges follow the job only
                assert 'instance=~"$instance"' in expr, (panel["title"], expr)


def test_no_sum_of_series_that_may_not_exist_yet() -> None:
    """``sum(a) + sum(b)`` is empty while either series is missing (a queue that
    never failed): totals select both names at once, and stats fall back to 0."""
    dashboard = json.loads(dashboard_json())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            assert not re.search(r"\)\s*[-+]\s*sum\b", expr), expr
            if panel["type"] == "stat" and "/" not in expr:
                assert expr.endswith(" or vector(0)"), (panel["title"], expr)


def test_cli_prints_the_rules_and_where_they_are() -> None:
    result = cli_runner().invoke(main, ["prometheus-rules"])
    assert result.exit_code == 0 and result.output == rules_yaml()
    assert "alert: PgqueueQueueLagHigh" in result.output
    where = cli_runner().invoke(main, ["prometheus-rules", "--path"])
    assert where.exit_code == 0
    assert Path(where.output.strip()) == rules_path()
    assert rules_path().read_text(encoding="utf-8") == rules_yaml()
