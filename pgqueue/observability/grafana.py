"""The Grafana dashboard and Prometheus alert rules shipped with pgqueue.

- ``pgqueue grafana-dashboard`` prints the dashboard: import it in Grafana
  (Dashboards > New > Import); the import asks for the Prometheus data source
  that scrapes the workers (its ``__inputs``).
- ``pgqueue prometheus-rules`` prints the alert rules (``--path``: where the
  installed file is, for Prometheus's ``rule_files``).

Every query uses only the metrics of :mod:`pgqueue.observability.metrics`
(tests check it, and run both files against a real Prometheus).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["DASHBOARD_FILE", "RULES_FILE", "dashboard_json", "rules_path", "rules_yaml"]

DASHBOARD_FILE = "grafana-dashboard.json"
RULES_FILE = "prometheus-rules.yml"


def dashboard_json() -> str:
    """The dashboard, as JSON text."""
    return resources.files(__package__).joinpath(DASHBOARD_FILE).read_text(encoding="utf-8")


def rules_yaml() -> str:
    """The Prometheus alert rules, as YAML text."""
    return resources.files(__package__).joinpath(RULES_FILE).read_text(encoding="utf-8")


def rules_path() -> Path:
    """The installed rules file on disk; raises FileNotFoundError when the package
    is not installed as plain files (a zip)."""
    path = Path(str(resources.files(__package__).joinpath(RULES_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"{RULES_FILE} is not a file on disk here: {path}")
    return path
