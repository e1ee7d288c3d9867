"""Set Django up on a test database, in this process or for a subprocess.

Django can be set up once per process; the in-process Django tests share one
setup (:func:`setup_in_process`), everything else runs ``python -m django`` in
a subprocess with :func:`django_env`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.django_project.settings"
DSN_ENV = "PGQUEUE_DJANGO_DSN"


def django_env(dsn: str, **extra: str) -> dict[str, str]:
    """The environment of a ``python -m django`` subprocess on ``dsn``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGQUEUE_")}
    env.update({DSN_ENV: dsn, "DJANGO_SETTINGS_MODULE": SETTINGS, "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(ROOT), "PGQUEUE_METRICS_PORT": "0"}, **extra)
    return env


def manage(dsn: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m django ARGS`` on ``dsn``; the completed process."""
    return subprocess.run([sys.executable, "-m", "django", *args], cwd=ROOT,
                          env=django_env(dsn), capture_output=True, text=True,
                          timeout=timeout, check=False)


def setup_in_process(dsn: str) -> None:
    """``django.setup()`` with the test project's settings on ``dsn``, once per process."""
    import django
    from django.conf import settings

    if settings.configured:
        current = os.environ.get(DSN_ENV)
        if os.environ.get("DJANGO_SETTINGS_MODULE") != SETTINGS or current != dsn:
            raise RuntimeError(
                "Django is already set up in this process with other settings or another "
                "database; in-process Django tests use tests.django_project.harness only")
        return
    os.environ[DSN_ENV] = dsn
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    django.setup()
