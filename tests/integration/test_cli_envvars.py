"""``--help`` names the environment variable of every option that has one, in every command."""

from __future__ import annotations

from typing import Any

import click
import pytest

from pgqueue.cli import main
from tests.support import cli_runner


def command_paths(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += command_paths(command, (*path, name))
        else:
            found.append((*path, name))
    return found


def help_text(*path: str) -> str:
    result = cli_runner().invoke(main, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_worker_help_names_the_environment_variable_of_each_option() -> None:
    text = help_text("worker")
    for variable in ("PGQUEUE_APP", "PGQUEUE_QUEUES", "PGQUEUE_CONCURRENCY",
                     "PGQUEUE_PROCESSES", "PGQUEUE_DSN", "PGQUEUE_POLL_INTERVAL",
                     "PGQUEUE_HEARTBEAT_INTERVAL", "PGQUEUE_STALL_TIMEOUT",
                     "PGQUEUE_SHUTDOWN_TIMEOUT", "PGQUEUE_LOG_LEVEL", "PGQUEUE_LOG_FORMAT",
                     "PGQUEUE_METRICS_PORT", "PGQUEUE_OTEL_PSYCOPG"):
        assert f"env var: {variable}" in text, variable


@pytest.mark.parametrize("path", command_paths(main), ids=" ".join)
def test_every_option_with_an_envvar_names_it_in_help(path: tuple[str, ...]) -> None:
    command: Any = main
    for name in path:
        command = command.commands[name]
    text = help_text(*path)
    variables = [param.envvar for param in command.params
                 if isinstance(param, click.Option) and param.envvar]
    assert all(f"env var: {variable}" in text for variable in variables), (variables, text)
