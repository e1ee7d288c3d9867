-- dashboard_queue_counts: the live counts of the given queues when no fresh sample
-- of the leader has them, each read stopping at bound: of the queue's first bound
-- queued jobs (in claim-index order), how many are ready, scheduled and
-- unclaimable, and how many that read saw (queued_seen: when it is bound, those
-- three are lower bounds); running and blocked, each up to bound; and the lag
-- (exact: the oldest ready job).
-- Parameters: queues (text[]), bound (integer).
-- Returns: queue, ready, scheduled, unclaimable, queued_seen, running, blocked,
--   lag_seconds.
-- Index: jobs_claim_idx for the queued jobs and the lag (one probe per distinct
--   priority, a loose index scan); jobs_running_idx, jobs_blocked_idx.
SELECT q.name::text AS queue, c.ready, c.scheduled, c.unclaimable, c.queued_seen,
       (SELECT count(*) FROM (SELECT FROM pgqueue.jobs j
            WHERE j.state = 'running' AND j.queue = q.name
            LIMIT %(bound)s::integer) x)::bigint AS running,
       (SELECT count(*) FROM (SELECT FROM pgqueue.jobs j
            WHERE j.blocked AND j.queue = q.name LIMIT %(bound)s::integer) x)::bigint
           AS blocked,
       round(GREATEST(0, COALESCE(extract(epoch FROM now() - (
           WITH RECURSIVE heads AS (
               (SELECT j.priority, j.run_at FROM pgqueue.jobs j
                WHERE j.queue = q.name AND j.state = 'queued' AND j.blocked IS NULL
                ORDER BY j.priority DESC, j.run_at LIMIT 1)
               UNION ALL
               SELECT n.priority, n.run_at FROM heads h CROSS JOIN LATERAL (
                   SELECT j.priority, j.run_at FROM pgqueue.jobs j
                   WHERE j.queue = q.name AND j.state = 'queued' AND j.blocked IS NULL
                     AND j.priority < h.priority
                   ORDER BY j.priority DESC, j.run_at LIMIT 1) n
           )
           SELECT min(heads.run_at) FROM heads)), 0))::numeric, 3) AS lag_seconds
FROM pgqueue.queues q
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE x.due)::bigint AS ready,
           count(*) FILTER (WHERE NOT x.due)::bigint AS scheduled,
           count(*) FILTER (WHERE x.due AND NOT EXISTS (
               SELECT 1 FROM pgqueue.workers w
               WHERE q.name = ANY (w.queues) AND x.task = ANY (w.tasks)))::bigint
               AS unclaimable,
           count(*)::bigint AS queued_seen
    FROM (SELECT j.run_at <= now() AS due, j.task FROM pgqueue.jobs j
          WHERE j.queue = q.name AND j.state = 'queued' AND j.blocked IS NULL
          LIMIT %(bound)s::integer) x
) c
WHERE q.name = ANY (%(queues)s::text[])
ORDER BY q.name
