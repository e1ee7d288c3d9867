"""The one loader of pgqueue's SQL files.

Migrations live in ``sql/migrations/NNNN_name.sql`` and queries in
``sql/queries/noun_verb.sql``, one statement each. Library code never holds SQL
text of its own: it asks :func:`query` for a statement by name.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["Migration", "migrations", "query"]

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def _sql_root() -> Traversable:
    # Installed (wheel or editable): the sql/ folder is the package pgqueue.sql.
    return resources.files("pgqueue.sql")


@functools.cache
def query(name: str) -> str:
    """The text of ``sql/queries/<name>.sql``; raises KeyError for an unknown name."""
    path = _sql_root() / "queries" / f"{name}.sql"
    if not path.is_file():
        raise KeyError(f"no SQL query named {name!r}")
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """Every migration, in version order."""
    found = []
    for entry in (_sql_root() / "migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"pgqueue migrations are not numbered 1..n: {versions}")
    return tuple(found)
