"""The Grafana dashboard shipped with pgqueue (``pgqueue grafana-dashboard``).

Import it in Grafana (Dashboards > New > Import) and pick the Prometheus data
source that scrapes the workers. Every query uses only the metrics of
:mod:`pgqueue.observability.metrics` (a test checks it).
"""

from __future__ import annotations

from importlib import resources

__all__ = ["DASHBOARD_FILE", "dashboard_json"]

DASHBOARD_FILE = "grafana-dashboard.json"


def dashboard_json() -> str:
    """The dashboard, as JSON text."""
    return resources.files(__package__).joinpath(DASHBOARD_FILE).read_text(encoding="utf-8")
