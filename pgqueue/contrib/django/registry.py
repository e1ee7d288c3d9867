"""The registry a Django worker runs: found in the project, each handler wrapped.

Invariant: every handler runs between two calls of Django's
``close_old_connections()`` in the thread that runs it (the job's thread for a
plain function; for an ``async def``, the thread ``sync_to_async`` runs the
ORM in), as Django does around each request; so a long-running worker never
keeps a connection past ``CONN_MAX_AGE`` or one that broke.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connections
from django.utils.module_loading import module_has_submodule

from ...tasks import Registry
from .conf import PgqueueSettings, get_settings

__all__ = ["closing_connections", "find_registries", "worker_registry"]


def worker_registry() -> Registry:
    """Every task of the project in one registry, handlers wrapped by
    :func:`closing_connections`; what ``manage.py pgqueue_worker`` runs.

    Closes the connections the discovery opened (an import that queried), so
    the worker, and each process it forks, starts without one.
    """
    found = find_registries(get_settings())
    merged = Registry()
    for where, registry in found:
        try:
            merged.include(registry, wrap=closing_connections)
        except Exception as exc:
            raise ImproperlyConfigured(f"cannot add the tasks of {where}: {exc}") from exc
    connections.close_all()
    if not len(merged):
        raise ImproperlyConfigured(
            "no pgqueue tasks found: define a pgqueue.Registry in the 'tasks' module of an "
            "installed app, or name registries in settings.PGQUEUE['TASKS']")
    return merged


def find_registries(settings: PgqueueSettings) -> list[tuple[str, Registry]]:
    """(where, registry) of each registry: those ``TASKS`` names, else each distinct
    registry at the top level of an installed app's tasks module."""
    if settings.tasks is not None:
        return [(name, _named_registry(name)) for name in settings.tasks]
    found: dict[int, tuple[str, Registry]] = {}
    for app in apps.get_app_configs():
        if not module_has_submodule(app.module, settings.tasks_module):
            continue
        name = f"{app.name}.{settings.tasks_module}"
        module = importlib.import_module(name)
        for attr, value in sorted(vars(module).items()):
            if isinstance(value, Registry) and id(value) not in found:
                found[id(value)] = (f"{name}:{attr}", value)
    return list(found.values())


def _named_registry(name: str) -> Registry:
    module_name, _, attr = name.partition(":")
    try:
        value = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(f"settings.PGQUEUE['TASKS'] names {name!r}: {exc}") from exc
    if not isinstance(value, Registry):
        raise ImproperlyConfigured(f"settings.PGQUEUE['TASKS'] names {name!r}, a "
                                   f"{type(value).__name__}, not a pgqueue.Registry")
    return value


def closing_connections(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` between two ``close_old_connections()`` calls in the thread that runs it."""
    if inspect.iscoroutinefunction(fn):
        close_async = sync_to_async(close_old_connections)

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            await close_async()
            try:
                return await fn(*args, **kwargs)
            finally:
                await close_async()

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return run
