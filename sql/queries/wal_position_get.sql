-- wal_position_get: the primary's current WAL write position, to compare a replica with.
-- Parameters: none. Errors on a server in recovery (a replica has no write position).
-- Reads: no table.
SELECT pg_current_wal_lsn()::text AS lsn
