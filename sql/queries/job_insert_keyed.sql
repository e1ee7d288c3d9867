-- job_insert_keyed: insert one throttled or debounced job of an enqueue_many,
-- whose queues' room the call already checked for all its jobs at once
-- (pgqueue.insert_job: no depth check, so the call stays all or nothing).
-- Parameters: those of job_try_enqueue.
-- Returns: one row (the id: the new job's, or the holder's of its key).
-- Locks: a transaction-scoped advisory lock on the key, held until the caller's
--   transaction ends; the inserted row, or the pending job a debounce pushes out.
SELECT pgqueue.insert_job(
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
    batch_id => %(batch_id)s,
    tags => %(tags)s::text[],
    meta => %(meta)s::jsonb,
    unique_for_seconds => %(unique_for_seconds)s,
    debounce_seconds => %(debounce_seconds)s,
    on_conflict => %(on_conflict)s
)
