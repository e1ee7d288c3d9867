-- admin_jobs_list: jobs newest first (by id), live and finished, with filters
-- and keyset pagination.
-- Parameters: queue, state, task (text or NULL for any); tags_all (text[]: jobs
--   with every one of these tags) and tags_any (text[]: jobs with at least one),
--   NULL for any; before_id (bigint or NULL for the first page: only ids below
--   it); limit.
-- Index: live jobs are few (pgqueue.jobs is kept small). History is read by one
--   backward scan of finished_jobs_queue_state_id_idx per (queue, state) pair,
--   each stopping after `limit` rows, then merged: the cost grows with the number
--   of queues, not with the size of history. Each final state has its own branch
--   with the state as a constant, so the planner sees how rare it is (a rare
--   `failed` would otherwise look as common as `succeeded` and be searched for
--   along the primary key). A task filter is applied during those scans, so a
--   rare task over a long history reads more rows. With a tag filter only live
--   jobs come from here (jobs_tags_idx); history comes from job_history_by_tags.
WITH wanted_queues AS (
    SELECT q.name::text AS queue
    FROM pgqueue.queues q
    WHERE %(queue)s::text IS NULL OR q.name = %(queue)s::text
),
live AS (
    SELECT j.id, j.queue::text AS queue, j.task::text AS task, j.state::text AS state,
           j.priority, j.attempt, j.max_attempts, j.run_at, j.created_at, j.started_at,
           NULL::timestamptz AS finished_at, j.worker_id::text AS worker_id, j.last_error,
           j.tags
    FROM pgqueue.jobs j
    WHERE (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
      AND (%(state)s::text IS NULL OR j.state::text = %(state)s::text)
      AND (%(task)s::text IS NULL OR j.task = %(task)s::text)
      AND (%(tags_all)s::text[] IS NULL OR (j.tags <> '{}' AND j.tags @> %(tags_all)s::text[]))
      AND (%(tags_any)s::text[] IS NULL OR (j.tags <> '{}' AND j.tags && %(tags_any)s::text[]))
      AND (%(before_id)s::bigint IS NULL OR j.id < %(before_id)s::bigint)
    ORDER BY j.id DESC
    LIMIT %(limit)s
),
history AS (
    SELECT h.*
    FROM wanted_queues q
    CROSS JOIN LATERAL (
        SELECT h.id, h.queue, h.task, h.state::text AS state, h.priority, h.attempt,
               h.max_attempts, h.run_at, h.created_at, h.started_at, h.finished_at,
               h.worker_id::text AS worker_id, h.last_error, h.tags
        FROM pgqueue.finished_jobs h
        WHERE h.queue = q.queue
          AND h.state = 'succeeded'
          AND (%(task)s::text IS NULL OR h.task = %(task)s::text)
          AND %(tags_all)s::text[] IS NULL AND %(tags_any)s::text[] IS NULL
          AND (%(before_id)s::bigint IS NULL OR h.id < %(before_id)s::bigint)
        ORDER BY h.id DESC
        LIMIT %(limit)s
    ) h
    WHERE %(state)s::text IS NULL OR %(state)s::text = 'succeeded'
    UNION ALL
    SELECT h.*
    FROM wanted_queues q
    CROSS JOIN LATERAL (
        SELECT h.id, h.queue, h.task, h.state::text AS state, h.priority, h.attempt,
               h.max_attempts, h.run_at, h.created_at, h.started_at, h.finished_at,
               h.worker_id::text AS worker_id, h.last_error, h.tags
        FROM pgqueue.finished_jobs h
        WHERE h.queue = q.queue
          AND h.state = 'failed'
          AND (%(task)s::text IS NULL OR h.task = %(task)s::text)
          AND %(tags_all)s::text[] IS NULL AND %(tags_any)s::text[] IS NULL
          AND (%(before_id)s::bigint IS NULL OR h.id < %(before_id)s::bigint)
        ORDER BY h.id DESC
        LIMIT %(limit)s
    ) h
    WHERE %(state)s::text IS NULL OR %(state)s::text = 'failed'
    UNION ALL
    SELECT h.*
    FROM wanted_queues q
    CROSS JOIN LATERAL (
        SELECT h.id, h.queue, h.task, h.state::text AS state, h.priority, h.attempt,
               h.max_attempts, h.run_at, h.created_at, h.started_at, h.finished_at,
               h.worker_id::text AS worker_id, h.last_error, h.tags
        FROM pgqueue.finished_jobs h
        WHERE h.queue = q.queue
          AND h.state = 'cancelled'
          AND (%(task)s::text IS NULL OR h.task = %(task)s::text)
          AND %(tags_all)s::text[] IS NULL AND %(tags_any)s::text[] IS NULL
          AND (%(before_id)s::bigint IS NULL OR h.id < %(before_id)s::bigint)
        ORDER BY h.id DESC
        LIMIT %(limit)s
    ) h
    WHERE %(state)s::text IS NULL OR %(state)s::text = 'cancelled'
)
SELECT * FROM live
UNION ALL
SELECT * FROM history
ORDER BY id DESC
LIMIT %(limit)s
