-- job_try_enqueue: insert one job unless its queue is full (pgqueue.try_enqueue,
-- which checks the queue's max_depth and then inserts the row pgqueue.enqueue
-- defines). Never raises for a full queue, so the caller's transaction stays
-- usable: the id is NULL instead.
-- Parameters: task, args (JSON text), queue, priority, run_at, max_attempts,
--   unique_key, delay_seconds, trace_context, expires_at, ttl_seconds,
--   depends_on (bigint[] text), concurrency_key, batch_id, tags (text[]), meta
--   (JSON text), unique_for_seconds, debounce_seconds, on_conflict ('replace' or
--   NULL).
-- Returns: one row (id, or NULL when full; max_depth, warn_depth, depth before
--   the insert: NULL when the queue has neither threshold).
-- Locks: the inserted row; waits on a concurrent insert of the same unique_key.
--   Takes no lock for the depth check: it counts what is committed and the
--   caller's own. With unique_for_seconds or debounce_seconds, a transaction-
--   scoped advisory lock on the key first (held until the caller's transaction
--   ends), and a debounce locks the pending job it pushes out.
SELECT id, max_depth, warn_depth, depth
FROM pgqueue.try_enqueue(
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
