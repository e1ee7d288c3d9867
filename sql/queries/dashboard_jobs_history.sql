-- dashboard_jobs_history: finished jobs newest first for the dashboard's job
-- list when it only filters by queue, state and task.
-- Parameters: queue, state (succeeded, failed, cancelled or NULL), task,
--   before_id (keyset cursor), limit.
-- Index: as admin_jobs_list: one backward scan of finished_jobs_queue_state_id_idx
--   per (queue, state) pair, each stopping after `limit` rows, then merged.
WITH pairs AS (
    SELECT q.name::text AS queue, s.state
    FROM pgqueue.queues q
    CROSS JOIN unnest(ARRAY['succeeded', 'failed', 'cancelled']::pgqueue.job_state[]) AS s(state)
    WHERE (%(queue)s::text IS NULL OR q.name = %(queue)s::text)
      AND (%(state)s::text IS NULL OR s.state::text = %(state)s::text)
)
SELECT h.*
FROM pairs p
CROSS JOIN LATERAL (
    SELECT h.id, h.queue, h.task, h.state::text AS state, h.priority, h.attempt,
           h.max_attempts, h.run_at, h.created_at, h.started_at, h.finished_at,
           NULL::timestamptz AS heartbeat_at, h.worker_id::text AS worker_id, h.last_error,
           h.unique_key, h.batch_id, h.state::text AS kind
    FROM pgqueue.finished_jobs h
    WHERE h.queue = p.queue AND h.state = p.state
      AND (%(task)s::text IS NULL OR h.task = %(task)s::text)
      AND (%(before_id)s::bigint IS NULL OR h.id < %(before_id)s::bigint)
    ORDER BY h.id DESC
    LIMIT %(limit)s
) h
ORDER BY h.id DESC
LIMIT %(limit)s
