-- finished_rollups_add: add the next minutes of finished jobs to the roll-ups
-- (pgqueue.roll_up_finished, migration 0015) and move the watermark. Run by the
-- leader's roll-up service in a loop until it is caught up.
-- Parameters: max_minutes (integer, >= 1: whole minutes per call),
--   settle_seconds (float: how far behind now() the roll-ups stop).
-- Returns one row: rolled_from, rolled_until (the watermark now), jobs (rows added).
-- Index: the BRIN index on finished_at bounds the rows read; the roll-ups'
--   primary key takes the upserts.
-- Locks: the row of pgqueue.rollup_state (FOR UPDATE) until the call commits, so
--   two callers take turns; finished_jobs is only read.
SELECT r.rolled_from, r.rolled_until, r.jobs
FROM pgqueue.roll_up_finished(%(max_minutes)s::integer, %(settle_seconds)s::float8) r
