"""How a read replica's lag reads to people and in the API header (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

from pgqueue.dashboard.reads import banner, lag_header
from pgqueue.replica import ReplicaLag, replica_unavailable

AT = datetime(2026, 1, 1, tzinfo=UTC)


def lag(**changes: object) -> ReplicaLag:
    values: dict[str, object] = {
        "read_from": "replica", "lag_seconds": 0.0, "lag_bytes": 0, "replay_paused": False,
        "replay_age_seconds": 3600.0, "last_replay_at": AT, "measured_by": "wal"}
    values.update(changes)
    return ReplicaLag(**values)  # type: ignore[arg-type]


def test_a_caught_up_replica_says_so_however_old_its_last_commit() -> None:
    assert lag().describe() == "reading from a replica: caught up with the primary"
    assert lag().as_json()["caught_up"] is True


def test_a_replica_behind_says_how_far_in_time_and_wal() -> None:
    text = lag(lag_seconds=4.2, lag_bytes=18_700, replay_paused=True).describe()
    assert text == ("reading from a replica: up to 4.2 s behind the primary "
                    "(18.3 kB of WAL not replayed yet); replay is paused")


def test_without_the_primary_the_age_of_the_last_commit_is_marked_as_such() -> None:
    text = lag(lag_seconds=600.0, lag_bytes=None, measured_by="replay_timestamp").describe()
    assert text.startswith("reading from a replica: last replayed commit 10 min ago")
    assert "not compared with the primary" in text and "idle primary" in text


def test_a_read_dsn_naming_a_primary_says_primary() -> None:
    found = ReplicaLag("primary", 0.0, 0, False, None, None, "primary")
    assert found.describe() == "reading from the primary (the read DSN is not a replica)"
    assert lag_header(found) == "primary; lag_seconds=0.0; lag_bytes=0"


def test_the_header_and_banner() -> None:
    behind = lag(lag_seconds=1.5, lag_bytes=120, replay_paused=True)
    assert lag_header(behind) == "replica; lag_seconds=1.5; lag_bytes=120; replay_paused"
    assert 'class="replica behind"' in banner(behind)
    assert 'class="replica ok"' in banner(lag())
    assert banner(None) == ""


def test_the_unavailable_error_names_the_replica_without_its_password() -> None:
    error = replica_unavailable("postgresql://app:s3cret@replica.internal:5433/db",
                                "Connection refused")
    text = str(error)
    assert "the read replica 'postgresql://app:***@replica.internal:5433/db'" in text
    assert "s3cret" not in text and "Connection refused." in text
    assert "writes go to the primary" in text
