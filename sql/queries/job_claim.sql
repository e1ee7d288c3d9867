-- job_claim: claim up to `limit` ready jobs for one worker in ONE statement.
-- Order: priority (higher first), then run_at, then id; per queue through
-- jobs_claim_idx, then merged. Only tasks the worker can run are claimed, so a
-- job of an unknown task stays queued (and shows in queue_stats.unclaimable).
-- Paused queues are skipped; a job past its expires_at is never started (the
-- leader moves it to history as cancelled, reason 'expired').
-- Parameters: queues (text[]), tasks (text[]), limit, worker_id.
-- Locks: FOR UPDATE SKIP LOCKED on candidates: concurrent claimers never wait
--   on each other and never take the same job. Rows locked but not picked by the
--   outer LIMIT are released at commit (this statement's own transaction).
WITH picked AS (
    SELECT c.id
    FROM unnest(%(queues)s::text[]) AS q(name)
    LEFT JOIN pgqueue.queues pq ON pq.name = q.name
    CROSS JOIN LATERAL (
        SELECT j.id, j.priority, j.run_at
        FROM pgqueue.jobs j
        WHERE j.state = 'queued'
          AND j.queue = q.name
          AND j.run_at <= now()
          AND j.task = ANY (%(tasks)s::text[])
          AND (j.expires_at IS NULL OR j.expires_at > now())
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE pq.paused IS NOT TRUE
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT %(limit)s
)
UPDATE pgqueue.jobs j
SET state = 'running',
    attempt = j.attempt + 1,
    started_at = now(),
    heartbeat_at = now(),
    worker_id = %(worker_id)s
FROM picked
WHERE j.id = picked.id
RETURNING j.id, j.queue::text, j.task::text, j.args, j.priority, j.attempt, j.max_attempts,
          j.run_at, j.created_at, j.started_at, j.timeout_seconds, j.trace_context
