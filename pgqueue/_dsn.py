"""Finding the database: the DSN's sources, and connecting with clear errors."""

from __future__ import annotations

import os
import re
from typing import Any

import psycopg

from .errors import DatabaseUnavailableError

__all__ = ["connect", "redact", "resolve_dsn"]

_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def resolve_dsn(dsn: str | None = None) -> str | None:
    """The DSN to use: the argument, else PGQUEUE_DSN, else DATABASE_URL, else None."""
    return dsn or os.environ.get("PGQUEUE_DSN") or os.environ.get("DATABASE_URL") or None


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
