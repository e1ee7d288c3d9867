-- dashboard_queue_limits: what a queue's limits count now, for its dashboard page:
-- its running jobs and the starts in its rate window (queue_limits_get without
-- the depth, which the page takes from its counts).
-- Parameters: queue. Returns one row (none for an unknown queue): running, claims.
-- Index: jobs_running_idx (running jobs are few); queue_starts_queue_idx.
SELECT (SELECT count(*) FROM pgqueue.jobs j
        WHERE j.state = 'running' AND j.queue = q.name) AS running,
       (SELECT count(*) FROM pgqueue.queue_starts s
        WHERE s.queue = q.name AND s.started_at > now() - q.rate_period * interval '1 second')
           AS claims
FROM pgqueue.queues q
WHERE q.name = %(queue)s
