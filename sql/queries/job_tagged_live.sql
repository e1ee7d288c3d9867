-- job_tagged_live: the ids of live jobs (queued or running) with the given tags,
-- newest first, one bounded batch at a time (cancel_jobs).
-- Parameters: tags_all (text[]: every one of these) or tags_any (text[]: at
--   least one), the other NULL; queue (text or NULL for any); before_id (bigint
--   or NULL: only ids below it); limit.
-- Index: jobs_tags_idx (GIN, partial on tags <> '{}'); pgqueue.jobs is kept small.
-- Locks: none (pgqueue.cancel locks each row while deciding).
SELECT j.id
FROM pgqueue.jobs j
WHERE j.tags <> '{}'
  AND (%(tags_all)s::text[] IS NULL OR j.tags @> %(tags_all)s::text[])
  AND (%(tags_any)s::text[] IS NULL OR j.tags && %(tags_any)s::text[])
  AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
  AND (%(before_id)s::bigint IS NULL OR j.id < %(before_id)s::bigint)
ORDER BY j.id DESC
LIMIT %(limit)s
