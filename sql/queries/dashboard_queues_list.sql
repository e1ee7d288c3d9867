-- dashboard_queues_list: every queue's settings and failed count, by name, for the
-- dashboard's queue tables (their live counts come from the leader's samples or
-- dashboard_queue_counts; nothing here counts live jobs).
-- Parameters: queue (text or NULL for every queue).
-- Returns: queue, paused, paused_at, created_at, concurrency_limit, rate_limit,
--   rate_period, max_depth, warn_depth, failed (in history, from
--   pgqueue.failed_counts as queue_stats sums it).
-- Index: queues' primary key; failed_counts is read whole (about a row per queue).
SELECT q.name::text AS queue, q.paused, q.paused_at, q.created_at, q.concurrency_limit,
       q.rate_limit, q.rate_period, q.max_depth, q.warn_depth,
       COALESCE(f.failed, 0)::bigint AS failed
FROM pgqueue.queues q
LEFT JOIN (SELECT c.queue, sum(c.n) AS failed FROM pgqueue.failed_counts c
           GROUP BY c.queue) f ON f.queue = q.name
WHERE %(queue)s::text IS NULL OR q.name = %(queue)s::text
ORDER BY q.name
