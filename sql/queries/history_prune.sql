-- history_prune: one step of the pruner (pgqueue.prune_history): delete at most
-- `limit` finished jobs of one queue and state older than keep_seconds, after
-- the cursor (after_at, after_id), except those a blocked job depends on or
-- whose batch is still open; batches whose last job this was go too.
-- Parameters: queue, state, keep_seconds (float), after_at (timestamptz or
--   NULL), after_id (bigint or NULL), limit (int).
-- Returns one row: scanned, deleted, batches, last_at, last_id (the new cursor;
--   NULL when nothing was scanned).
-- Index: finished_jobs_queue_state_finished_idx (queue, state, finished_at, id),
--   a range scan that stops at `limit` rows; the primary key deletes.
-- Locks: the scanned rows, FOR UPDATE SKIP LOCKED (never waits), then the
--   deleted ones until the statement commits; RowExclusiveLock on the table.
SELECT scanned, deleted, batches, last_at, last_id
FROM pgqueue.prune_history(%(queue)s, %(state)s::pgqueue.job_state, %(keep_seconds)s,
                           %(after_at)s, %(after_id)s, %(limit)s)
