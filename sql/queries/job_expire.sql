-- job_expire: the leader moves queued jobs past their expires_at to history as
-- cancelled with the reason 'expired'. A running job is not affected.
-- Parameters: limit (at most this many jobs per statement; the leader runs it
--   again while a statement expires that many).
-- Index: jobs_expires_at_idx. Locks: FOR UPDATE SKIP LOCKED.
-- Returns: the expired ids.
WITH expired AS (
    SELECT id FROM pgqueue.jobs
    WHERE state = 'queued' AND expires_at IS NOT NULL AND expires_at <= now()
    ORDER BY expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM pgqueue.jobs j USING expired e WHERE j.id = e.id RETURNING j.*
)
INSERT INTO pgqueue.finished_jobs
    (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
     started_at, finished_at, worker_id, unique_key, last_error, errors, trace_context,
     timeout_seconds, expires_at, cancel_requested_at, depends_on, batch_id, concurrency_key)
SELECT g.id, g.queue, g.task, g.args, g.priority, 'cancelled', g.attempt, g.max_attempts,
       g.run_at, g.created_at, g.started_at, now(), g.worker_id, g.unique_key, 'expired',
       g.errors, g.trace_context, g.timeout_seconds, g.expires_at, g.cancel_requested_at,
       g.depends_on, g.batch_id, g.concurrency_key
FROM gone g
RETURNING id
