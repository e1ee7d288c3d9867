"""An Alembic revision includes pgqueue's schema with ``pgqueue.contrib.alembic.upgrade(op)``.

Each test runs a real ``alembic upgrade`` (the command API) with a script
directory written to a temporary folder, against a fresh database.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgqueue.errors import MigrationError
from pgqueue.migrate import latest_version, migrate
from tests.support import fetch, scalar

pytest.importorskip("alembic")

ENV_PY = '''
from alembic import context
from sqlalchemy import create_engine

config = context.config
per_migration = config.attributes.get("per_migration", False)
if context.is_offline_mode():
    context.configure(url=config.attributes["url"], literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(config.attributes["url"])
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=per_migration)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
'''

REVISION = '''
import sqlalchemy as sa
from alembic import op

from pgqueue.contrib import alembic as pgqueue_alembic

revision = "{revision}"
down_revision = {down}


def upgrade() -> None:
    {body}


def downgrade() -> None:
    pass
'''


def sqlalchemy_url(dsn: str) -> str:
    from sqlalchemy.engine import URL

    params = psycopg.conninfo.conninfo_to_dict(dsn)
    return URL.create("postgresql+psycopg", username=params.get("user"),
                      password=params.get("password"), host=params.get("host"),
                      port=int(params["port"]) if params.get("port") else None,
                      database=params.get("dbname")).render_as_string(hide_password=False)


def alembic_config(dsn: str, folder: Path, revisions: list[str], **attributes: Any) -> Any:
    """A Config for a script directory with ``revisions`` (upgrade bodies), in order."""
    from alembic.config import Config

    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV_PY)
    for number, body in enumerate(revisions, start=1):
        down = repr(f"r{number - 1}") if number > 1 else "None"
        (folder / "versions" / f"r{number}.py").write_text(REVISION.format(
            revision=f"r{number}", down=down, body=textwrap.indent(body, "    ").strip()))
    config = Config()
    config.set_main_option("script_location", str(folder))
    config.attributes.update(url=sqlalchemy_url(dsn), **attributes)
    return config


ORDERS_AND_PGQUEUE = """\
op.create_table("orders", sa.Column("id", sa.BigInteger, primary_key=True))
pgqueue_alembic.upgrade(op)
"""


def pgqueue_versions(dsn: str) -> list[tuple[int, str]]:
    return [(v, str(t)) for v, t in fetch(
        dsn, "SELECT version, applied_at::text FROM pgqueue.migrations ORDER BY version")]


@pytest.mark.parametrize("per_migration", [False, True])
def test_alembic_upgrade_applies_pgqueues_schema(empty_dsn: str, tmp_path: Path,
                                                 per_migration: bool) -> None:
    from alembic import command

    config = alembic_config(empty_dsn, tmp_path, [ORDERS_AND_PGQUEUE],
                            per_migration=per_migration)
    command.upgrade(config, "head")
    assert [v for v, _ in pgqueue_versions(empty_dsn)] == list(range(1, latest_version() + 1))
    assert scalar(empty_dsn, "SELECT version_num FROM alembic_version") == "r1"
    assert scalar(empty_dsn, "SELECT to_regclass('public.orders') IS NOT NULL")
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        assert migrate(conn) == []  # pgqueue migrate finds nothing to do


def test_a_failed_revision_leaves_no_pgqueue_schema_behind(empty_dsn: str,
                                                            tmp_path: Path) -> None:
    from alembic import command

    failing = ORDERS_AND_PGQUEUE + 'raise RuntimeError("the revision failed after pgqueue")\n'
    with pytest.raises(RuntimeError, match="the revision failed"):
        command.upgrade(alembic_config(empty_dsn, tmp_path, [failing]), "head")
    assert scalar(empty_dsn, "SELECT to_regnamespace('pgqueue') IS NULL")
    assert scalar(empty_dsn, "SELECT to_regclass('public.alembic_version') IS NULL")


def test_a_later_revision_applies_nothing_on_a_migrated_schema(empty_dsn: str,
                                                                tmp_path: Path) -> None:
    from alembic import command

    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        migrate(conn)
    before = pgqueue_versions(empty_dsn)
    again = ("applied = pgqueue_alembic.upgrade(op)\n"
             "assert applied == [], applied\n")
    command.upgrade(alembic_config(empty_dsn, tmp_path, [ORDERS_AND_PGQUEUE, again]), "head")
    assert pgqueue_versions(empty_dsn) == before
    assert scalar(empty_dsn, "SELECT version_num FROM alembic_version") == "r2"


def test_offline_mode_says_to_print_the_sql(empty_dsn: str, tmp_path: Path) -> None:
    from alembic import command

    with pytest.raises(MigrationError, match="pgqueue migrate --print-sql"):
        command.upgrade(alembic_config(empty_dsn, tmp_path, [ORDERS_AND_PGQUEUE]), "head",
                        sql=True)


def test_migrate_in_transaction_joins_the_callers_and_refuses_autocommit(
        empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn) as conn:
        assert migrate(conn, in_transaction=True) == list(range(1, latest_version() + 1))
        conn.rollback()
    assert scalar(empty_dsn, "SELECT to_regnamespace('pgqueue') IS NULL")
    with psycopg.connect(empty_dsn, autocommit=True) as conn, \
            pytest.raises(MigrationError, match="not in autocommit mode"):
        migrate(conn, in_transaction=True)


def test_a_psycopg2_engine_is_refused_with_the_url_to_use(empty_dsn: str,
                                                          tmp_path: Path) -> None:
    pytest.importorskip("psycopg2")
    from alembic import command

    config = alembic_config(empty_dsn, tmp_path, [ORDERS_AND_PGQUEUE])
    config.attributes["url"] = config.attributes["url"].replace("+psycopg:", "+psycopg2:")
    with pytest.raises(TypeError, match=r"postgresql\+psycopg://"):
        command.upgrade(config, "head")
    assert scalar(empty_dsn, "SELECT to_regnamespace('pgqueue') IS NULL")
