-- queue_limits_get: a queue's limits and what they count now.
-- Parameters: queue. Returns one row (no row for an unknown queue):
--   concurrency_limit, running, rate_limit, rate_period, claims in the window,
--   max_depth, warn_depth, depth (its live jobs, exact: pgqueue.queue_depth).
SELECT q.concurrency_limit,
       (SELECT count(*) FROM pgqueue.jobs j WHERE j.state = 'running' AND j.queue = q.name),
       q.rate_limit,
       q.rate_period,
       (SELECT count(*) FROM pgqueue.queue_starts s
        WHERE s.queue = q.name AND s.started_at > now() - q.rate_period * interval '1 second'),
       q.max_depth,
       q.warn_depth,
       pgqueue.queue_depth(q.name)
FROM pgqueue.queues q
WHERE q.name = %(queue)s
