"""What the framework integrations rest on: Registry.include, registry factories for
``--app``, and Django migrations that keep up with pgqueue's."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

import pgqueue
from pgqueue.cli.worker import load_registry
from pgqueue.migrate import latest_version
from pgqueue.types import JobContext

MIGRATIONS = Path(pgqueue.__file__).parent / "contrib" / "django" / "migrations"


def make_registry() -> pgqueue.Registry:
    tasks = pgqueue.Registry()
    tasks.task(name="made")(lambda: None)
    return tasks


def needs_an_argument(name: str) -> pgqueue.Registry:
    raise AssertionError("never called")


def _around(calls: list[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):
            async def run_async(**kwargs: Any) -> Any:
                calls.append("before")
                return await fn(**kwargs)
            return run_async

        def run(**kwargs: Any) -> Any:
            calls.append("before")
            return fn(**kwargs)
        return run

    return wrap


def test_include_adds_tasks_and_schedules_with_their_options() -> None:
    app = pgqueue.Registry()

    @app.task(name="one", queue="email", max_attempts=3, timeout=5)
    def one(to: str, ctx: JobContext) -> str:
        return to

    @app.periodic("*/5 * * * *", name="tick")
    def tick() -> None: ...

    merged = pgqueue.Registry()
    calls: list[str] = []
    merged.include(app, wrap=_around(calls))
    assert merged.names == ["one", "tick"]
    assert [s.name for s in merged.schedules] == ["tick"]
    task = merged["one"]
    assert (task.queue, task.max_attempts, task.timeout, task.context_param) == \
        ("email", 3, 5.0, "ctx")
    assert task.bind_args({"to": "a"}, None) == {"to": "a", "ctx": None}  # type: ignore[arg-type]
    assert task.fn(to="a", ctx=None) == "a" and calls == ["before"]
    assert app["one"].fn is one.fn  # the included registry is left as it was


def test_include_refuses_a_name_taken_and_adds_nothing() -> None:
    first, second = pgqueue.Registry(), pgqueue.Registry()
    first.task(name="same")(lambda: None)
    second.task(name="other")(lambda: None)
    second.task(name="same")(lambda: None)
    with pytest.raises(pgqueue.TaskError, match="'same' are already registered"):
        first.include(second)
    assert first.names == ["same"]


def test_include_refuses_a_wrapper_that_changes_async() -> None:
    app = pgqueue.Registry()

    @app.task(name="coro")
    async def coro() -> None: ...

    with pytest.raises(pgqueue.TaskError, match="changed whether task 'coro' is async"):
        pgqueue.Registry().include(app, wrap=lambda fn: lambda **kw: None)


def test_app_may_name_a_function_that_returns_the_registry() -> None:
    assert load_registry(f"{__name__}:make_registry").names == ["made"]
    with pytest.raises(click.BadParameter, match="nor a function without arguments"):
        load_registry(f"{__name__}:needs_an_argument")


def test_the_django_migrations_bring_the_newest_pgqueue_migration() -> None:
    pytest.importorskip("django")
    names = sorted(p.stem for p in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))
    brought = [getattr(importlib.import_module(f"pgqueue.contrib.django.migrations.{name}"),
                       "PGQUEUE_SCHEMA_VERSION", 0) for name in names]
    assert latest_version() == max(brought), (
        "a pgqueue migration was added: add a Django migration that runs "
        "pgqueue.contrib.django.schema.apply_schema, with PGQUEUE_SCHEMA_VERSION = "
        f"{latest_version()} (see pgqueue/contrib/django/schema.py)")
