-- job_insert_one: insert one job without a unique key, dependencies or batch,
-- as a plain INSERT (no function call): the single-enqueue fast path. The row
-- is the one pgqueue.enqueue() builds; input was validated in Python
-- (run_at/delay and expires_at/ttl are never both given).
-- Parameters: task, args (JSON text), queue, priority, run_at, max_attempts,
--   delay_seconds, trace_context, expires_at, ttl_seconds, concurrency_key.
-- Fires the statement trigger: one NOTIFY for the queue, delivered at commit.
INSERT INTO pgqueue.jobs
    (queue, task, args, priority, run_at, max_attempts, trace_context, expires_at,
     concurrency_key)
VALUES (
    %(queue)s, %(task)s, %(args)s::jsonb, %(priority)s,
    COALESCE(%(run_at)s, now() + COALESCE(%(delay_seconds)s, 0) * interval '1 second'),
    %(max_attempts)s, %(trace_context)s,
    COALESCE(%(expires_at)s, now() + %(ttl_seconds)s * interval '1 second'),
    %(concurrency_key)s)
RETURNING id
