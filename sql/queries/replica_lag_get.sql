-- replica_lag_get: how far the server behind a read DSN is behind its primary.
-- Parameters: primary_lsn (the primary's pg_current_wal_lsn(), read just before; NULL
-- when the primary was not asked).
-- One row: in_recovery (false: the server is a primary itself); replay_paused;
-- lag_bytes (WAL the primary has written and this server has not replayed yet,
-- NULL without primary_lsn); replay_age_seconds (since the last replayed commit's
-- timestamp: grows on an idle primary though nothing is missing); last_replay_at.
-- Reads: no table. pg_is_wal_replay_paused() raises outside recovery, hence the CASE.
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END
           AS replay_paused,
       CASE WHEN pg_is_in_recovery() AND %(primary_lsn)s::pg_lsn IS NOT NULL
            THEN greatest(pg_wal_lsn_diff(%(primary_lsn)s::pg_lsn,
                                          pg_last_wal_replay_lsn()), 0)::bigint
       END AS lag_bytes,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
           AS replay_age_seconds,
       pg_last_xact_replay_timestamp() AS last_replay_at
