-- dashboard_jobs_history: finished jobs newest first for the dashboard's job
-- list when it only filters by queue, state and task (by tag as well:
-- job_history_by_tags).
-- Parameters: queue, state (succeeded, failed, cancelled or NULL), task,
--   before_id (keyset cursor), limit.
-- Index: as admin_jobs_list: one backward scan of finished_jobs_queue_state_id_idx
--   per (queue, state) pair, each stopping after `limit` rows, then merged. Each
--   final state has its own branch with the state as a constant, so the planner
--   sees how rare it is; with the state taken from a list instead, it searched for
--   every pair along the primary key (1.2 s against 1,000,000 finished jobs).
WITH wanted_queues AS (
    SELECT q.name::text AS queue
    FROM pgqueue.queues q
    WHERE %(queue)s::text IS NULL OR q.name = %(queue)s::text
)
SELECT * FROM (
SELECT h.*
FROM wanted_queues q
CROSS JOIN LATERAL (
    SELECT h.id, h.queue, h.task, h.state::text AS state, h.priority, h.attempt,
           h.max_attempts, h.run_at, h.created_at, h.started_at, h.finished_at,
           NULL::timestamptz AS heartbeat_at, h.worker_id::text AS worker_id, h.last_error,
           h.unique_key, h.batch_id, h.tags, h.state::text AS kind
    FROM pgqueue.finished_jobs h
    WHERE h.queue = q.queue
      AND h.state = 'succeeded'
      AND (%(task)s::text IS NULL OR h.task = %(task)s::text)
      AND (%(before_id)s::bigint IS NULL OR h.id < %(before_id)s::bigint)
    ORDER BY h.id DESC
    LIMIT %(limit)s
) h
WHERE %(state)s::text IS NULL OR %(state)s::text = 'succeeded'
UNION ALL
SELECT h.*
FROM wanted_queues q
CROSS JOIN LATERAL (
    SELECT h.id, h.queue, h.task, h.state::text AS state, h.priority, h.attempt,
           h.max_attempts, h.run_at, h.created_at, h.started_at, h.finished_at,
           NULL::timestamptz AS heartbeat_at, h.worker_id::text AS worker_id, h.last_error,
           h.unique_key, h.batch_id, h.tags, h.state::text AS kind
    FROM pgqueue.finished_jobs h
    WHERE h.queue = q.queue
      AND h.state = 'failed'
      AND (%(task)s::text IS NULL OR h.task = %(task)s::text)
      AND (%(before_id)s::bigint IS NULL OR h.id < %(before_id)s::bigint)
    ORDER BY h.id DESC
    LIMIT %(limit)s
) h
WHERE %(state)s::text IS NULL OR %(state)s::text = 'failed'
UNION ALL
SELECT h.*
FROM wanted_queues q
CROSS JOIN LATERAL (
    SELECT h.id, h.queue, h.task, h.state::text AS state, h.priority, h.attempt,
           h.max_attempts, h.run_at, h.created_at, h.started_at, h.finished_at,
           NULL::timestamptz AS heartbeat_at, h.worker_id::text AS worker_id, h.last_error,
           h.unique_key, h.batch_id, h.tags, h.state::text AS kind
    FROM pgqueue.finished_jobs h
    WHERE h.queue = q.queue
      AND h.state = 'cancelled'
      AND (%(task)s::text IS NULL OR h.task = %(task)s::text)
      AND (%(before_id)s::bigint IS NULL OR h.id < %(before_id)s::bigint)
    ORDER BY h.id DESC
    LIMIT %(limit)s
) h
WHERE %(state)s::text IS NULL OR %(state)s::text = 'cancelled'
) h
ORDER BY h.id DESC
LIMIT %(limit)s
