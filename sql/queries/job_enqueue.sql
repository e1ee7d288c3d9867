-- job_enqueue: insert one job through the SQL function pgqueue.enqueue, which
-- defines what a job row is. Returns the new id, or the id of the live job that
-- already holds unique_key.
-- Parameters: task, args (JSON text), queue, priority, run_at, max_attempts,
--   unique_key, delay_seconds, trace_context, expires_at, ttl_seconds,
--   depends_on (bigint[] text), concurrency_key, batch_id.
-- Locks: the inserted row; waits on a concurrent insert of the same unique_key.
SELECT pgqueue.enqueue(
    task => %(task)s,
    args => %(args)s::jsonb,
    queue => %(queue)s,
    priority => %(priority)s,
    run_at => %(run_at)s,
    max_attempts => %(max_attempts)s,
    unique_key => %(unique_key)s,
    delay_seconds => %(delay_seconds)s,
    trace_context => %(trace_context)s,
    expires_at => %(expires_at)s,
    ttl_seconds => %(ttl_seconds)s,
    depends_on => %(depends_on)s::bigint[],
    concurrency_key => %(concurrency_key)s,
    batch_id => %(batch_id)s
)
