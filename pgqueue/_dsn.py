"""Finding the database: the DSN's sources, and connecting with clear errors."""

from __future__ import annotations

import os
import re
from typing import Any

import psycopg

from .errors import ConfigError, DatabaseUnavailableError

__all__ = ["DEFAULT_POOLER", "POOLERS", "connect", "redact", "resolve_dsn",
           "resolve_listen_dsn", "resolve_pooler"]

# What sits between pgqueue's own connections and PostgreSQL: nothing, a
# session-mode pooler (a client keeps its server connection: the same as
# nothing), or a transaction-mode pooler (each transaction may run on another
# server connection: no LISTEN, no prepared statements, no session settings).
POOLERS = ("none", "session", "transaction")
DEFAULT_POOLER = "none"

_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def resolve_dsn(dsn: str | None = None) -> str | None:
    """The DSN to use: the argument, else PGQUEUE_DSN, else DATABASE_URL, else None."""
    return dsn or os.environ.get("PGQUEUE_DSN") or os.environ.get("DATABASE_URL") or None


def resolve_pooler(pooler: str | None = None) -> str:
    """The pooler mode: the argument, else PGQUEUE_POOLER, else ``none``.

    Raises ConfigError for a value that is not one of :data:`POOLERS`.
    """
    value = pooler or os.environ.get("PGQUEUE_POOLER") or DEFAULT_POOLER
    if value not in POOLERS:
        raise ConfigError(f"pooler must be one of {', '.join(POOLERS)}, got {value!r}")
    return value


def resolve_listen_dsn(listen_dsn: str | None = None) -> str | None:
    """The DSN of a direct connection for LISTEN: the argument, else
    PGQUEUE_LISTEN_DSN, else None."""
    return listen_dsn or os.environ.get("PGQUEUE_LISTEN_DSN") or None


def redact(text: str) -> str:
    """``text`` with any password of a URL or key=value DSN replaced by ``***``."""
    text = _URL_PASSWORD.sub(r"\1***\2", text)
    return _KV_PASSWORD.sub(r"\1***", text)


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """Connect, turning a failure into DatabaseUnavailableError without secrets."""
    try:
        return psycopg.connect(dsn, **kwargs)
    except psycopg.Error as exc:
        raise DatabaseUnavailableError(
            f"cannot connect to the database {redact(dsn)!r}: {' '.join(redact(str(exc)).split())}"
        ) from None
