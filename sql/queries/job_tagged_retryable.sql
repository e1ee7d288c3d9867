-- job_tagged_retryable: the ids of failed or cancelled jobs in history with the
-- given tags, newest first, one bounded batch at a time (retry_jobs).
-- Parameters: tags_all (text[]: every one of these) or tags_any (text[]: at
--   least one), the other NULL; queue (text or NULL for any); before_id (bigint
--   or NULL: only ids below it); limit.
-- Index: the primary key (tag, job_id) of finished_job_tags, for the tags of an
--   any-of filter or the first of an all-of one; the rest is checked on each row.
SELECT h.id
FROM pgqueue.finished_jobs h
WHERE h.id IN (
        SELECT t.job_id FROM pgqueue.finished_job_tags t
        WHERE t.tag = ANY (COALESCE(%(tags_any)s::text[], (%(tags_all)s::text[])[1:1]))
          AND (%(before_id)s::bigint IS NULL OR t.job_id < %(before_id)s::bigint))
  AND (%(tags_all)s::text[] IS NULL OR h.tags @> %(tags_all)s::text[])
  AND h.state IN ('failed', 'cancelled')
  AND (%(queue)s::text IS NULL OR h.queue = %(queue)s::text)
ORDER BY h.id DESC
LIMIT %(limit)s
