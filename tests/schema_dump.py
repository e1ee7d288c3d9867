"""The normalised schema dump that ``sql/schema.sql`` holds.

Regenerate the committed file after changing a migration::

    python -m tests.schema_dump > sql/schema.sql

That migrates a fresh database on the server of ``PGQUEUE_TEST_DSN`` (default the
local one), dumps the ``pgqueue`` schema with ``pg_dump``, and drops the database.
Pass ``--dsn`` to dump an existing, already migrated database instead.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import uuid

import psycopg
from psycopg import conninfo

import pgqueue

DEFAULT_SERVER_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DUMP_ARGS = ["--schema-only", "--schema=pgqueue", "--no-owner", "--no-privileges"]
_DROPPED = re.compile(r"^(--|SET |SELECT pg_catalog\.set_config|\\restrict|\\unrestrict)")


def normalise(dump: str) -> str:
    """``dump`` without comments, session settings and runs of blank lines."""
    kept: list[str] = []
    for raw in dump.splitlines():
        line = raw.rstrip()
        if _DROPPED.match(line):
            continue
        if not line and (not kept or not kept[-1]):
            continue
        kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept) + "\n"


def pg_dump_path() -> str:
    """The pg_dump binary on PATH; raises if PostgreSQL's client tools are missing."""
    found = shutil.which("pg_dump")
    if found is None:
        raise RuntimeError("pg_dump is not on PATH; install the PostgreSQL client tools")
    return found


def dump_schema(dsn: str) -> str:
    """The normalised ``pg_dump`` of the pgqueue schema of the database at ``dsn``."""
    result = subprocess.run(
        [pg_dump_path(), *PG_DUMP_ARGS, "--dbname", dsn],
        check=True, capture_output=True, text=True,
    )
    return normalise(result.stdout)


def dump_fresh_schema(server_dsn: str) -> str:
    """Migrate a throwaway database on ``server_dsn``'s server and dump its schema."""
    name = f"pgqueue_schema_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = conninfo.conninfo_to_dict(server_dsn)
    params["dbname"] = name
    dsn = conninfo.make_conninfo(**params)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            pgqueue.migrate(conn)
        return dump_schema(dsn)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="dump this migrated database instead of a fresh one")
    args = parser.parse_args(argv)
    if args.dsn:
        sys.stdout.write(dump_schema(args.dsn))
    else:
        server = os.environ.get("PGQUEUE_TEST_DSN", DEFAULT_SERVER_DSN)
        sys.stdout.write(dump_fresh_schema(server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
