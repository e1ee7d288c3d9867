-- queue_retention_get: a queue's retention overrides (pgqueue.queue_retention).
-- Parameters: queue. Returns (state, keep_seconds) per override, keep_seconds
--   NULL for "keep for ever"; states without a row follow the workers.
-- Index: the primary key (queue, state).
SELECT r.state::text, extract(epoch FROM r.keep_for)::float8
FROM pgqueue.queue_retention r
WHERE r.queue = %(queue)s
ORDER BY r.state
