-- history_targets_list: what a round of the pruner works through
-- (pgqueue.retention_targets): every known queue and final state whose
-- retention is not off, with its retention in seconds: the queue's override
-- (pgqueue.queue_retention), else the worker's.
-- Parameters: succeeded_seconds, failed_seconds, cancelled_seconds (float, or
--   NULL: off). Returns (queue, state, keep_seconds), by queue then state.
-- Index: none needed: pgqueue.queues and the overrides are small. No locks.
SELECT queue, state::text, keep_seconds
FROM pgqueue.retention_targets(%(succeeded_seconds)s, %(failed_seconds)s,
                               %(cancelled_seconds)s)
