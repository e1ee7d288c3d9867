-- job_tagged_count: how many jobs with the given tags a cancel or a retry by
-- tag would touch now: queued, running, and failed or cancelled in history.
-- Parameters: tags_all (text[]) or tags_any (text[]), the other NULL; queue
--   (text or NULL for any). Returns one row.
-- Index: jobs_tags_idx (GIN, partial on tags <> '{}') for live jobs; for history
--   the primary key (tag, job_id) of finished_job_tags, for the tags of an any-of
--   filter or the first of an all-of one (the rest is checked on each row).
SELECT l.queued, l.running, h.retryable
FROM (
    SELECT count(*) FILTER (WHERE j.state = 'queued') AS queued,
           count(*) FILTER (WHERE j.state = 'running') AS running
    FROM pgqueue.jobs j
    WHERE j.tags <> '{}'
      AND (%(tags_all)s::text[] IS NULL OR j.tags @> %(tags_all)s::text[])
      AND (%(tags_any)s::text[] IS NULL OR j.tags && %(tags_any)s::text[])
      AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
) l
CROSS JOIN (
    SELECT count(*) AS retryable
    FROM pgqueue.finished_jobs h
    WHERE h.id IN (
            SELECT t.job_id FROM pgqueue.finished_job_tags t
            WHERE t.tag = ANY (COALESCE(%(tags_any)s::text[], (%(tags_all)s::text[])[1:1])))
      AND (%(tags_all)s::text[] IS NULL OR h.tags @> %(tags_all)s::text[])
      AND h.state IN ('failed', 'cancelled')
      AND (%(queue)s::text IS NULL OR h.queue = %(queue)s::text)
) h
