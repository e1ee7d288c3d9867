"""The ``PGQUEUE`` settings dict, read and checked, and the worker's database.

Every key is optional::

    PGQUEUE = {
        "DATABASE": "default",   # the alias whose connection settings the worker uses
        "DSN": None,             # or a DSN of its own (e.g. direct, when Django's goes
                                 # through a pooler)
        "TASKS": None,           # registries as "module:attribute"; default: discover
        "TASKS_MODULE": "tasks", # the module looked for in each installed app
    }

An unknown key or a value of the wrong type raises ``ImproperlyConfigured``
naming it, when the settings are first read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from psycopg import conninfo, pq

__all__ = ["PgqueueSettings", "database_dsn", "get_settings"]


@dataclass(frozen=True, slots=True)
class PgqueueSettings:
    """``settings.PGQUEUE``, with its defaults filled in."""

    database: str = "default"
    dsn: str | None = None
    tasks: tuple[str, ...] | None = None
    tasks_module: str = "tasks"

    @property
    def worker_dsn(self) -> str:
        """``DSN`` if set, else the connection settings of ``DATABASE``."""
        return self.dsn or database_dsn(self.database)


def get_settings() -> PgqueueSettings:
    """``settings.PGQUEUE`` checked; raises ImproperlyConfigured for a bad key or value."""
    given: Any = getattr(django_settings, "PGQUEUE", {})
    if not isinstance(given, dict):
        raise ImproperlyConfigured(f"settings.PGQUEUE must be a dict, got {type(given).__name__}")
    known = {"DATABASE", "DSN", "TASKS", "TASKS_MODULE"}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ImproperlyConfigured(f"settings.PGQUEUE has unknown keys {unknown}; "
                                   f"known: {sorted(known)}")
    database = _text(given, "DATABASE", "default")
    if database not in connections:
        raise ImproperlyConfigured(f"settings.PGQUEUE['DATABASE'] is {database!r}, which is "
                                   "not in settings.DATABASES")
    tasks = given.get("TASKS")
    if tasks is not None:
        if isinstance(tasks, str) or not all(
                isinstance(t, str) and ":" in t for t in tasks):
            raise ImproperlyConfigured("settings.PGQUEUE['TASKS'] must be a list of "
                                       "'module:attribute' strings naming pgqueue registries")
        tasks = tuple(tasks)
    dsn = given.get("DSN")
    if dsn is not None and not isinstance(dsn, str):
        raise ImproperlyConfigured(f"settings.PGQUEUE['DSN'] must be a string, got "
                                   f"{type(dsn).__name__}")
    return PgqueueSettings(database=database, dsn=dsn or None, tasks=tasks,
                           tasks_module=_text(given, "TASKS_MODULE", "tasks"))


def database_dsn(alias: str) -> str:
    """A libpq DSN with the connection settings Django uses for ``alias``."""
    if alias not in connections:
        raise ImproperlyConfigured(f"{alias!r} is not in settings.DATABASES")
    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        raise ImproperlyConfigured(f"pgqueue needs PostgreSQL; the Django database {alias!r} "
                                   f"is {wrapper.vendor}")
    keywords = {d.keyword.decode() for d in pq.Conninfo.get_defaults()}
    params = {key: str(value) for key, value in wrapper.get_connection_params().items()
              if key in keywords and value is not None and not isinstance(value, bool)}
    return conninfo.make_conninfo(**params)


def _text(given: dict[str, Any], key: str, default: str) -> str:
    value = given.get(key, default)
    if not isinstance(value, str) or not value:
        raise ImproperlyConfigured(f"settings.PGQUEUE[{key!r}] must be a non-empty string, "
                                   f"got {value!r}")
    return value
