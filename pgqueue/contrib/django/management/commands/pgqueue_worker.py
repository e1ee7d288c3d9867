"""``manage.py pgqueue_worker``: ``pgqueue worker`` with Django set up.

The options are those of ``pgqueue worker`` (read from that command, so the two
never drift) but ``--app``: the tasks are the project's
(:func:`pgqueue.contrib.django.registry.worker_registry`), and the database
is ``--dsn``, else ``PGQUEUE["DSN"]``, else the connection settings of the alias
``--database`` or ``PGQUEUE["DATABASE"]`` names.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

import click
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from pgqueue.cli.worker import worker
from pgqueue.contrib.django.conf import database_dsn, get_settings
from pgqueue.contrib.django.registry import worker_registry

_OWN = ("app",)  # worker options this command sets itself


def _worker_options() -> list[click.Option]:
    return [p for p in worker.params if isinstance(p, click.Option) and p.name not in _OWN]


def _help(option: click.Option) -> str:
    if option.name == "dsn":
        return ("PostgreSQL connection string [default: PGQUEUE['DSN'], else the settings "
                "of the --database alias].")
    text = option.help or ""
    if isinstance(option.type, click.Choice):
        text += f" One of: {', '.join(map(str, option.type.choices))}."
    if option.show_default and option.default is not None:
        text += f" [default: {option.default}]"
    if option.envvar:
        text += f" [env: {option.envvar}]"
    return text.strip()


class Command(BaseCommand):
    help = ("Run a pgqueue worker for the tasks of this project's installed apps "
            "(the options of 'pgqueue worker', with the tasks found in the project).")

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--database", default=None,
                            help="The database alias whose settings the worker connects "
                                 "with [default: PGQUEUE['DATABASE'], else 'default'].")
        for option in _worker_options():
            dest = f"worker_{option.name}"
            if option.is_flag:
                parser.add_argument(*option.opts, dest=dest, action="store_true",
                                    default=None, help=option.help)
            else:
                parser.add_argument(*option.opts, dest=dest, default=None,
                                    metavar=(option.name or "value").upper(),
                                    help=_help(option))

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            settings = get_settings()
            dsn = options.get("worker_dsn") or (
                database_dsn(options["database"]) if options.get("database")
                else settings.worker_dsn)
            worker_registry()  # a missing or clashing task is a one-line error, not a traceback
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        argv = ["--app", f"{worker_registry.__module__}:{worker_registry.__name__}",
                "--dsn", dsn]
        for option in _worker_options():
            value = options.get(f"worker_{option.name}")
            if value is None or option.name == "dsn":
                continue
            argv += [option.opts[0]] if option.is_flag else [option.opts[0], str(value)]
        worker.main(args=argv, prog_name="manage.py pgqueue_worker", standalone_mode=True)
