"""What the ``pgqueue`` commands share: the ``--dsn`` help, resolving it, printing JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from .. import _dsn

__all__ = ["DSN_HELP", "POOLER_HELP", "echo_json", "require_dsn"]

DSN_HELP = "PostgreSQL connection string; else $PGQUEUE_DSN, else $DATABASE_URL."
POOLER_HELP = ("What --dsn goes through: none (PostgreSQL itself), session (a session-mode "
               "pooler: the same as none) or transaction (a transaction-mode pooler such as "
               "PgBouncer's pool_mode = transaction: no prepared statements, no session "
               "settings).")


def echo_json(payload: Any) -> None:
    """One JSON document, as every ``--json`` prints (the operating commands' format)."""
    from ..dashboard.http import json_default

    click.echo(json.dumps(payload, default=json_default, indent=2, ensure_ascii=False))


def require_dsn(dsn: str | None) -> str:
    """The DSN given, else the environment's; a usage error (exit 2) when there is none."""
    resolved = _dsn.resolve_dsn(dsn)
    if not resolved:
        raise click.UsageError("no database given: pass --dsn or set PGQUEUE_DSN or DATABASE_URL")
    return resolved
