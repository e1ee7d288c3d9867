-- job_live_list: live jobs (queued or running) in id order, with filters, for
-- pgqueue.testing (enqueued_jobs, assert_enqueued, and what a drain left).
-- Parameters: queue, task (text or NULL for any); queues (text[] or NULL for
--   any); due_only (bool: only jobs a claim could take now).
-- Returns `due`: queued, not blocked by a dependency, run_at reached and not
--   expired, by the clock the claim uses (clock_timestamp()).
-- Index: none; pgqueue.jobs is kept small, and tests hold few jobs.
SELECT j.id, j.task::text AS task, j.queue::text AS queue, j.args, j.state::text AS state,
       j.priority, j.attempt, j.max_attempts, j.run_at, j.created_at, j.unique_key,
       j.concurrency_key, j.last_error,
       (j.state = 'queued' AND j.blocked IS NULL AND j.run_at <= clock_timestamp()
        AND (j.expires_at IS NULL OR j.expires_at > clock_timestamp())) IS TRUE AS due
FROM pgqueue.jobs j
WHERE (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
  AND (%(task)s::text IS NULL OR j.task = %(task)s::text)
  AND (%(queues)s::text[] IS NULL OR j.queue = ANY (%(queues)s::text[]))
  AND (NOT %(due_only)s::boolean
       OR (j.state = 'queued' AND j.blocked IS NULL AND j.run_at <= clock_timestamp()
           AND (j.expires_at IS NULL OR j.expires_at > clock_timestamp())) IS TRUE)
ORDER BY j.id
