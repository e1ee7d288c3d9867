"""Timestamps outside 1970-01-01 .. 9999-12-31 UTC are refused everywhere (0009).

PostgreSQL would store 'infinity', '-infinity', BC dates and years up to 294276;
one such value broke queue_stats, every psycopg read of all_jobs, `pgqueue
status`, the dashboard and the worker's next-due look-up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue._sql import migrations, query
from pgqueue.migrate import latest_version

BAD_TIMES = ["-infinity", "infinity", "294276-01-01 00:00:00+00", "0044-03-15 12:00:00+00 BC",
             "1969-12-31 23:59:59.999999+00", "9999-12-31 00:00:00+00"]
EDGE_TIMES = ["1970-01-01 00:00:00+00", "9999-12-30 23:59:59.999999+00"]
# Tables no caller writes: the migrator's own record.
UNCHECKED_TABLES = {"migrations"}


def _range_error(column: str, table: str = "jobs") -> str:
    return f'"{table}_{column}_between_1970_and_9999"'


@pytest.mark.parametrize("column", ["run_at", "expires_at"])
@pytest.mark.parametrize("value", BAD_TIMES)
def test_sql_enqueue_refuses_out_of_range_times(clean_db: str, column: str, value: str) -> None:
    with psycopg.connect(clean_db) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match=_range_error(column)):
            conn.execute(f"SELECT pgqueue.enqueue('t', '{{}}', 'q', {column} => %s)", [value])
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)


@pytest.mark.parametrize("column", ["run_at", "created_at", "started_at", "heartbeat_at",
                                    "expires_at", "cancel_requested_at"])
@pytest.mark.parametrize("value", ["-infinity", "infinity", "0001-01-01 00:00:00+00 BC"])
def test_raw_job_inserts_with_out_of_range_times_are_refused(clean_db: str, column: str,
                                                             value: str) -> None:
    with psycopg.connect(clean_db) as conn, \
            pytest.raises(psycopg.errors.CheckViolation, match=_range_error(column)):
        conn.execute(f"INSERT INTO pgqueue.jobs (task, {column}) VALUES ('t', %s)", [value])


@pytest.mark.parametrize("column", ["created_at", "paused_at"])
def test_raw_queue_inserts_with_out_of_range_times_are_refused(clean_db: str,
                                                               column: str) -> None:
    with psycopg.connect(clean_db) as conn, \
            pytest.raises(psycopg.errors.CheckViolation, match=_range_error(column, "queues")):
        conn.execute(f"INSERT INTO pgqueue.queues (name, {column}) VALUES ('q', 'infinity')")


def test_every_timestamp_column_is_bounded(clean_db: str) -> None:
    """Each timestamptz column of each pgqueue table has the range check, by its name."""
    with psycopg.connect(clean_db) as conn:
        columns = conn.execute(
            """
            SELECT c.relname, a.attname
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'pgqueue' AND c.relkind IN ('r', 'p') AND a.attnum > 0
              AND NOT a.attisdropped AND a.atttypid = 'timestamptz'::regtype
            ORDER BY 1, 2
            """).fetchall()
        checks = {row[0]: row[1] for row in conn.execute(
            """
            SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE connamespace = 'pgqueue'::regnamespace AND contype = 'c'
            """)}
    assert len(columns) > 20
    missing = []
    for table, column in columns:
        if table in UNCHECKED_TABLES:
            continue
        definition = checks.get(f"{table}_{column}_between_1970_and_9999", "")
        if definition != f"CHECK (pgqueue.timestamp_in_bounds({column}))":
            missing.append(f"{table}.{column}")
    assert missing == [], (
        "timestamp columns without a range check; add CONSTRAINT "
        "<table>_<column>_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(<column>))")


def test_edges_of_the_range_are_kept_and_readable(clean_db: str) -> None:
    """The range ends exactly at its bounds; what is inside reads back in any zone."""
    with psycopg.connect(clean_db, autocommit=True) as conn:
        for value in ("1969-12-31 23:59:59.999999+00", "9999-12-31 00:00:00+00"):
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute("SELECT pgqueue.enqueue('t', '{}', 'q', run_at => %s)", [value])
        for value in EDGE_TIMES:
            conn.execute("SELECT pgqueue.enqueue('t', '{}', 'q', run_at => %s, expires_at => %s)",
                         [value, value])
        # Read back in a session far east and far west of UTC: still datetimes.
        for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):
            conn.execute("SELECT set_config('TimeZone', %s, false)", [zone])
            times = [r[0] for r in conn.execute(
                "SELECT run_at FROM pgqueue.all_jobs ORDER BY run_at")]
            assert [t.astimezone(UTC) for t in times] == [
                datetime(1970, 1, 1, tzinfo=UTC),
                datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)]
        stats = conn.execute("SELECT ready, scheduled, lag_seconds FROM pgqueue.queue_stats"
                             ).fetchone()
        assert stats is not None and stats[:2] == (1, 1) and stats[2] > 0


@pytest.mark.parametrize("when", [
    datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),
])
@pytest.mark.parametrize("field", ["run_at", "expires_at"])
def test_python_enqueue_refuses_out_of_range_times_before_sending(
        conn: psycopg.Connection[Any], when: datetime, field: str) -> None:
    with pytest.raises(pgqueue.InvalidJobError,
                       match=f"{field} must be from 1970-01-01 up to .* 9999-12-31 UTC"):
        pgqueue.enqueue(conn, "t", {}, **{field: when})  # type: ignore[arg-type]
    conn.execute("SELECT 1")  # the caller's transaction is still usable
    with pytest.raises(pgqueue.InvalidJobError, match=r"jobs\[0\]: run_at must be from 1970"):
        pgqueue.enqueue_many(conn, [{"task": "t", "run_at": when}])


def test_python_enqueue_range_matches_the_schema(conn: psycopg.Connection[Any]) -> None:
    """One microsecond outside is refused in Python; the edges are stored as given."""
    low = datetime(1970, 1, 1, tzinfo=UTC)
    high = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
    for outside in (low - timedelta(microseconds=1), high + timedelta(microseconds=1)):
        with pytest.raises(pgqueue.InvalidJobError, match="run_at must be from 1970-01-01"):
            pgqueue.enqueue(conn, "t", {}, run_at=outside)
    ids = [pgqueue.enqueue(conn, "t", {}, run_at=low),
           pgqueue.enqueue(conn, "t", {}, run_at=high, expires_at=high)]
    rows = conn.execute("SELECT run_at FROM pgqueue.jobs WHERE id = ANY(%s) ORDER BY id",
                        [ids]).fetchall()
    assert [r[0] for r in rows] == [low, high]


def test_migration_clamps_rows_already_stored_out_of_range(empty_dsn: str) -> None:
    """Rows stored before 0009 move to the nearest bound; the views read them again."""
    assert latest_version() >= 9
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        for migration in migrations():
            if migration.version >= 9:
                break
            with conn.transaction():
                conn.execute(query("migration_table_create"))
                conn.execute(migration.sql)
                conn.execute(query("migration_record"),
                             {"version": migration.version, "name": migration.name})
        ids = [conn.execute(
            "SELECT pgqueue.enqueue('t', '{}', 'q', run_at => %s, expires_at => %s)",
            [run_at, expires_at]).fetchone()[0]  # type: ignore[index]
            for run_at, expires_at in [("-infinity", None),
                                       ("infinity", "0044-03-15 00:00:00+00 BC"),
                                       ("294276-01-01 00:00:00+00", "2030-01-01 00:00:00+00")]]
        conn.execute(
            "INSERT INTO pgqueue.finished_jobs (id, queue, task, args, priority, state, attempt,"
            " max_attempts, run_at, created_at, finished_at, errors) VALUES (1000, 'q', 't',"
            " '{}', 0, 'failed', 1, 1, '-infinity', 'infinity', '20000-01-01', '[]')")
        with pytest.raises(psycopg.errors.DataError):
            conn.execute("SELECT * FROM pgqueue.queue_stats")

        assert pgqueue.migrate(conn) == [v for v in range(9, latest_version() + 1)]

        low = datetime(1970, 1, 1, tzinfo=UTC)
        high = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
        rows = conn.execute("SELECT id, run_at, expires_at FROM pgqueue.jobs ORDER BY id"
                            ).fetchall()
        assert rows == [(ids[0], low, None), (ids[1], high, low),
                        (ids[2], high, datetime(2030, 1, 1, tzinfo=UTC))]
        assert conn.execute("SELECT run_at, created_at, finished_at FROM pgqueue.all_jobs"
                            " WHERE id = 1000").fetchone() == (low, high, high)
        stats = conn.execute("SELECT queue, ready, scheduled, failed FROM pgqueue.queue_stats"
                             ).fetchall()
        assert stats == [("q", 1, 2, 1)]
