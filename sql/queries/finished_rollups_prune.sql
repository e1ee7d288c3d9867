-- finished_rollups_prune: remove roll-up buckets older than keep_seconds.
-- Parameters: keep_seconds (float). Returns nothing.
-- Index: the roll-ups' primary key (width_seconds, bucket, queue), per width.
-- Locks: the rows removed.
DELETE FROM pgqueue.finished_rollups r
WHERE r.width_seconds IN (60, 600, 3600)
  AND r.bucket < now() - %(keep_seconds)s::float8 * interval '1 second'
