"""The Django app config: label ``pgqueue``."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["PgqueueConfig"]


class PgqueueConfig(AppConfig):
    """pgqueue's schema (``migrate``) and worker (``pgqueue_worker``) for a Django project."""

    name = "pgqueue.contrib.django"
    label = "pgqueue"
    verbose_name = "pgqueue"
