-- dashboard_jobs_search: finished jobs newest first matching a search: id, args
-- (jsonb containment), error text, unique key, batch, and a finished_at range.
-- Parameters: queue, state, task, id, args, error, unique_key, batch_id, since,
--   until (on finished_at), tags_all / tags_any (text[]), before_id, limit.
--   NULL means "any".
-- Index: the primary key for an id; finished_jobs_batch_idx for a batch; else
--   the BRIN index on finished_at bounds the rows read to the time range (the
--   dashboard always sends one for args, error and unique-key searches), and the
--   remaining conditions are checked on those rows. The order is on h.id + 0 so
--   that the planner never walks the primary key backwards hoping to meet `limit`
--   matches early: when few rows match (or none), that read all of history
--   (12 s over 10,000,000 rows), while the time range holds a bounded number.
SELECT h.id, h.queue, h.task, h.state::text AS state, h.priority, h.attempt,
       h.max_attempts, h.run_at, h.created_at, h.started_at, h.finished_at,
       NULL::timestamptz AS heartbeat_at, h.worker_id::text AS worker_id, h.last_error,
       h.unique_key, h.batch_id, h.tags, h.state::text AS kind
FROM pgqueue.finished_jobs h
WHERE (%(queue)s::text IS NULL OR h.queue = %(queue)s::text)
  AND (%(state)s::text IS NULL OR h.state::text = %(state)s::text)
  AND (%(task)s::text IS NULL OR h.task = %(task)s::text)
  AND (%(id)s::bigint IS NULL OR h.id = %(id)s::bigint)
  AND (%(args)s::jsonb IS NULL OR h.args @> %(args)s::jsonb)
  AND (%(error)s::text IS NULL OR strpos(lower(h.last_error), lower(%(error)s::text)) > 0)
  AND (%(unique_key)s::text IS NULL OR h.unique_key = %(unique_key)s::text)
  AND (%(batch_id)s::bigint IS NULL OR h.batch_id = %(batch_id)s::bigint)
  AND (%(since)s::timestamptz IS NULL OR h.finished_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR h.finished_at < %(until)s::timestamptz)
  AND (%(tags_all)s::text[] IS NULL OR (h.tags <> '{}' AND h.tags @> %(tags_all)s::text[]))
  AND (%(tags_any)s::text[] IS NULL OR (h.tags <> '{}' AND h.tags && %(tags_any)s::text[]))
  AND (%(before_id)s::bigint IS NULL OR h.id < %(before_id)s::bigint)
ORDER BY h.id + 0 DESC
LIMIT %(limit)s
