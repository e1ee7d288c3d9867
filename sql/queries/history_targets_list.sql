-- history_targets_list: what a round of the pruner works through
-- (pgqueue.retention_targets): every known queue and final state whose
-- retention is not off, with its retention in seconds: the queue's override
-- (pgqueue.queue_retention), else the worker's.
-- Parameters: succeeded_seconds, failed_seconds, cancelled_seconds (float, or
--   NULL: off). Returns (queue, state, keep_seconds), by queue then state.
-- Rows the dashboard's roll-up has not counted yet (finished at or after
-- pgqueue.rollup_state.rolled_until) are kept whatever the retention, so a
-- roll-up that lags (its first catch-up after an upgrade, say) loses no counts:
-- the retention is raised to the roll-up's age, and until the roll-up has run
-- once (rolled_until NULL) the round has nothing to do.
-- Index: none needed: pgqueue.queues and the overrides are small. No locks.
SELECT t.queue, t.state::text,
       GREATEST(t.keep_seconds, EXTRACT(epoch FROM now() - r.rolled_until)::float8)
           AS keep_seconds
FROM pgqueue.retention_targets(%(succeeded_seconds)s, %(failed_seconds)s,
                               %(cancelled_seconds)s) t
CROSS JOIN pgqueue.rollup_state r
WHERE r.rolled_until IS NOT NULL
