-- job_insert_many: insert many jobs in one statement from parallel arrays.
-- Returns the ids actually inserted; a job whose unique_key a live job already
-- holds is skipped (the caller looks up the holder's id).
-- Parameters: ids, queues, tasks, args (JSON texts), priorities, run_ats,
--   delays (seconds, NULL for none), max_attempts, unique_keys, trace_contexts,
--   expires_ats, ttls (seconds, NULL for none), depends_ons (bigint[] as text,
--   NULL for none; such jobs are inserted blocked), concurrency_keys, batch_ids,
--   tags (text[] as text, NULL for none), metas (JSON texts, NULL for none):
--   arrays of equal length.
-- Fires the statement trigger once: one NOTIFY per queue.
INSERT INTO pgqueue.jobs
    (id, queue, task, args, priority, run_at, max_attempts, unique_key, trace_context,
     expires_at, depends_on, blocked, concurrency_key, batch_id, tags, meta)
SELECT
    u.id, u.queue, u.task, u.args::jsonb, u.priority,
    COALESCE(u.run_at, now() + COALESCE(u.delay_seconds, 0) * interval '1 second'),
    u.max_attempts, u.unique_key, u.trace_context,
    COALESCE(u.expires_at, now() + u.ttl_seconds * interval '1 second'),
    u.depends_on::bigint[], CASE WHEN u.depends_on IS NOT NULL THEN true END,
    u.concurrency_key, u.batch_id, COALESCE(u.tags::text[], '{}'),
    COALESCE(u.meta::jsonb, '{}')
FROM unnest(
    %(ids)s::bigint[], %(queues)s::text[], %(tasks)s::text[], %(args)s::text[],
    %(priorities)s::int[], %(run_ats)s::timestamptz[], %(delays)s::float8[],
    %(max_attempts)s::int[], %(unique_keys)s::text[], %(trace_contexts)s::text[],
    %(expires_ats)s::timestamptz[], %(ttls)s::float8[], %(depends_ons)s::text[],
    %(concurrency_keys)s::text[], %(batch_ids)s::bigint[], %(tags)s::text[],
    %(metas)s::text[]
) AS u(id, queue, task, args, priority, run_at, delay_seconds, max_attempts,
       unique_key, trace_context, expires_at, ttl_seconds, depends_on, concurrency_key,
       batch_id, tags, meta)
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
RETURNING id
