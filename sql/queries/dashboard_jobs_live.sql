-- dashboard_jobs_live: live jobs newest first for the dashboard's job list, each
-- with what it waits for (`kind`), its worker and heartbeat, its latest progress
-- and how often it snoozed.
-- Parameters: queue, task, kind (ready, scheduled, retrying, blocked,
--   unclaimable, queued, running or NULL for any), id, args (jsonb containment),
--   error (text found in last_error), unique_key, batch_id, since, until (on
--   created_at), tags_all / tags_any (text[]: every one / at least one of these
--   tags), before_id (keyset cursor), from_id (the smallest id read: a search by
--   args or error text without a time range reads the newest ids only), limit.
--   NULL means "any".
-- kind: running; blocked (waits for dependencies); retrying (attempt > 0, run_at
--   ahead); scheduled (run_at ahead); unclaimable (ready, and no registered worker
--   of the queue knows the task); ready.
-- Index: the primary key backwards (pgqueue.jobs is kept small), or
--   jobs_unique_key_idx / jobs_batch_idx / jobs_tags_idx when those are given.
WITH live AS (
    SELECT j.id, j.queue::text AS queue, j.task::text AS task, j.state::text AS state,
           j.priority, j.attempt, j.max_attempts, j.run_at, j.created_at, j.started_at,
           NULL::timestamptz AS finished_at, j.heartbeat_at, j.worker_id::text AS worker_id,
           j.last_error, j.unique_key, j.batch_id, j.tags, j.progress, j.snoozes,
           CASE
               WHEN j.state = 'running' THEN 'running'
               WHEN j.blocked THEN 'blocked'
               WHEN j.run_at > now() AND j.attempt > 0 THEN 'retrying'
               WHEN j.run_at > now() THEN 'scheduled'
               WHEN NOT EXISTS (SELECT 1 FROM pgqueue.workers w
                                WHERE j.queue::text = ANY (w.queues)
                                  AND j.task::text = ANY (w.tasks)) THEN 'unclaimable'
               ELSE 'ready'
           END AS kind
    FROM pgqueue.jobs j
    WHERE (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
      AND (%(task)s::text IS NULL OR j.task = %(task)s::text)
      AND (%(id)s::bigint IS NULL OR j.id = %(id)s::bigint)
      AND (%(args)s::jsonb IS NULL OR j.args @> %(args)s::jsonb)
      AND (%(error)s::text IS NULL OR strpos(lower(j.last_error), lower(%(error)s::text)) > 0)
      AND (%(unique_key)s::text IS NULL OR j.unique_key = %(unique_key)s::text)
      AND (%(batch_id)s::bigint IS NULL OR j.batch_id = %(batch_id)s::bigint)
      AND (%(since)s::timestamptz IS NULL OR j.created_at >= %(since)s::timestamptz)
      AND (%(until)s::timestamptz IS NULL OR j.created_at < %(until)s::timestamptz)
      AND (%(tags_all)s::text[] IS NULL OR (j.tags <> '{}' AND j.tags @> %(tags_all)s::text[]))
      AND (%(tags_any)s::text[] IS NULL OR (j.tags <> '{}' AND j.tags && %(tags_any)s::text[]))
      AND (%(before_id)s::bigint IS NULL OR j.id < %(before_id)s::bigint)
      AND (%(from_id)s::bigint IS NULL OR j.id >= %(from_id)s::bigint)
      AND (%(kind)s::text IS NULL
           OR (%(kind)s::text = 'running' AND j.state = 'running')
           OR (%(kind)s::text <> 'running' AND j.state = 'queued'))
)
SELECT * FROM live
WHERE %(kind)s::text IS NULL OR %(kind)s::text IN ('queued', 'running')
   OR kind = %(kind)s::text
   OR (%(kind)s::text = 'scheduled' AND kind = 'retrying')
ORDER BY id DESC
LIMIT %(limit)s
