-- job_history_by_tags: finished jobs with the given tags, newest first, one page
-- (list_jobs and the dashboard's job list when they filter by tag).
-- Parameters: tags_all (text[]: jobs with every one of these) or tags_any
--   (text[]: with at least one), the other NULL; queue, state, task (text or NULL
--   for any); before_id (keyset cursor or NULL); limit.
-- Index: the primary key (tag, job_id) of finished_job_tags, walked backwards from
--   before_id for each tag of an any-of filter, or for the first tag of an all-of
--   filter (the others, and queue, state and task, are checked on each row found
--   through finished_jobs' primary key), stopping after `limit` matches each. The
--   cost is the rows walked to find them: `limit` for one tag alone, however long
--   history is; more when the first tag is common and the rest of the filter rare.
WITH walked AS (
    SELECT DISTINCT f.id
    FROM unnest(COALESCE(%(tags_any)s::text[], (%(tags_all)s::text[])[1:1])) AS w(tag)
    CROSS JOIN LATERAL (
        SELECT t.job_id AS id
        FROM pgqueue.finished_job_tags t
        JOIN pgqueue.finished_jobs h ON h.id = t.job_id
        WHERE t.tag = w.tag
          AND (%(before_id)s::bigint IS NULL OR t.job_id < %(before_id)s::bigint)
          AND (%(tags_all)s::text[] IS NULL OR h.tags @> %(tags_all)s::text[])
          AND (%(queue)s::text IS NULL OR h.queue = %(queue)s::text)
          AND (%(state)s::text IS NULL OR h.state::text = %(state)s::text)
          AND (%(task)s::text IS NULL OR h.task = %(task)s::text)
        ORDER BY t.job_id DESC
        LIMIT %(limit)s
    ) f
)
SELECT h.id, h.queue, h.task, h.state::text AS state, h.priority, h.attempt,
       h.max_attempts, h.run_at, h.created_at, h.started_at, h.finished_at,
       NULL::timestamptz AS heartbeat_at, h.worker_id::text AS worker_id, h.last_error,
       h.unique_key, h.batch_id, h.tags, h.state::text AS kind
FROM walked
JOIN pgqueue.finished_jobs h ON h.id = walked.id
ORDER BY h.id DESC
LIMIT %(limit)s
