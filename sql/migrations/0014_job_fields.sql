-- 0014_job_fields: four columns a job carries through its whole life, live and
-- in history, for the features that read and write them (README: "Tags",
-- "Metadata and progress", "Snooze").
--
-- - tags: a small set of short labels given at enqueue ("customer:42",
--   "import"), for filtering and bulk actions. At most 20, each 1 to 100
--   characters, none NULL (pgqueue.tags_valid, checked on the live table;
--   history rows only ever come from live ones).
-- - meta: a JSON object given at enqueue and merged into while the job runs.
-- - progress: the latest progress a running attempt reported ({"done": n,
--   "total": m, "message": "..."}), NULL until one is reported.
-- - snoozes: how many times the job was put back without using an attempt.
--
-- The defaults are constants, so adding the columns rewrites no table.
-- pgqueue.finished_row, the single source of the history row, carries them;
-- pgqueue.retry_jobs carries tags and meta back, and starts a retried job's
-- progress and snoozes afresh, as it does its attempts.

CREATE FUNCTION pgqueue.tags_valid(tags text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT cardinality(tags) <= 20
       AND array_position(tags, NULL) IS NULL
       AND COALESCE(array_length(tags, 2), 0) = 0
       AND NOT EXISTS (SELECT 1 FROM unnest(tags) AS t(tag)
                       WHERE length(t.tag) NOT BETWEEN 1 AND 100)
$$;

COMMENT ON FUNCTION pgqueue.tags_valid(text[])
IS 'a job''s tags: at most 20, one-dimensional, each 1 to 100 characters, none NULL';

ALTER TABLE pgqueue.jobs
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}',
    ADD COLUMN meta jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN progress jsonb,
    ADD COLUMN snoozes integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT jobs_tags_valid CHECK (pgqueue.tags_valid(tags)),
    ADD CONSTRAINT jobs_meta_object CHECK (jsonb_typeof(meta) = 'object'),
    ADD CONSTRAINT jobs_progress_object CHECK (progress IS NULL
                                               OR jsonb_typeof(progress) = 'object'),
    ADD CONSTRAINT jobs_snoozes_range CHECK (snoozes >= 0);

ALTER TABLE pgqueue.finished_jobs
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}',
    ADD COLUMN meta jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN progress jsonb,
    ADD COLUMN snoozes integer NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION pgqueue.finished_row(job pgqueue.jobs, state pgqueue.job_state,
                                                last_error text, errors jsonb,
                                                result jsonb DEFAULT NULL,
                                                cancel_requested_at timestamptz DEFAULT NULL)
RETURNS pgqueue.finished_jobs
LANGUAGE sql STABLE AS $$
    SELECT ROW(job.id, job.queue, job.task, job.args, job.priority, finished_row.state,
               job.attempt, job.max_attempts, job.run_at, job.created_at, job.started_at,
               now(), job.worker_id, job.unique_key, finished_row.last_error,
               finished_row.errors, job.trace_context, job.timeout_seconds, job.expires_at,
               COALESCE(finished_row.cancel_requested_at, job.cancel_requested_at),
               job.depends_on, job.batch_id, job.concurrency_key,
               finished_row.result, job.tags, job.meta, job.progress,
               job.snoozes)::pgqueue.finished_jobs
$$;

CREATE OR REPLACE FUNCTION pgqueue.retry_jobs(ids bigint[]) RETURNS SETOF bigint
LANGUAGE sql AS $$
    WITH moved AS (
        DELETE FROM pgqueue.finished_jobs h
        WHERE h.id = ANY (ids)
          AND h.state IN ('failed', 'cancelled')
          AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = h.id)
          AND (h.unique_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM pgqueue.jobs j WHERE j.unique_key = h.unique_key))
        RETURNING h.*
    )
    INSERT INTO pgqueue.jobs AS j
        (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
         unique_key, last_error, errors, trace_context, timeout_seconds, expires_at,
         depends_on, batch_id, concurrency_key, tags, meta)
    SELECT m.id, m.queue, m.task, m.args, m.priority, 'queued', 0, m.max_attempts, now(),
           m.created_at, m.unique_key, m.last_error, m.errors, m.trace_context,
           m.timeout_seconds, NULL, m.depends_on, m.batch_id, m.concurrency_key,
           m.tags, m.meta
    FROM moved m
    RETURNING j.id
$$;
