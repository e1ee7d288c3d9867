"""pgqueue._dsn.redact: passwords never reach a message."""

from __future__ import annotations

import pytest

from pgqueue._dsn import redact, resolve_dsn


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:secret@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://:secret@h/db", "postgresql://:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("host=h password=secret user=u", "host=h password=*** user=u"),
        ("host=h password = secret", "host=h password = ***"),
        ("host=h PASSWORD=secret", "host=h PASSWORD=***"),
        ("host=h password='sec ret\\' x' user=u", "host=h password=*** user=u"),
        ("postgresql://u@h/db?password=secret", "postgresql://u@h/db?password=***"),
        (
            "cannot connect to 'postgresql://u:secret@h/db': refused",
            "cannot connect to 'postgresql://u:***@h/db': refused",
        ),
        ("no secrets here", "no secrets here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_resolve_dsn_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGQUEUE_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert resolve_dsn(None) is None
    monkeypatch.setenv("DATABASE_URL", "db-url")
    assert resolve_dsn(None) == "db-url"
    monkeypatch.setenv("PGQUEUE_DSN", "pgqueue-dsn")
    assert resolve_dsn(None) == "pgqueue-dsn"
    assert resolve_dsn("explicit") == "explicit"
