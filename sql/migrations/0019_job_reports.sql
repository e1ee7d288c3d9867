-- 0019_job_reports: the views show what a job reports while it runs and how
-- often it snoozed (README: "Snooze", "Progress and metadata while a job
-- runs"). The columns themselves came with 0014_job_fields; the worker writes
-- them (job_complete_many, job_report_many). Each view is its newest
-- definition (sql/schema.sql) with columns added at the end, so CREATE OR
-- REPLACE keeps what reads the old ones working.
--
-- - pgqueue.progress_percent(progress): done / total as 0 to 100, one
--   decimal; NULL without numbers or a total > 0 (also the dashboard's bar).
-- - running_jobs: progress (the latest report, {"done", "total", "message"}),
--   progress_percent, meta and snoozes.
-- - scheduled_jobs: snoozes (a snoozed job waits here for its delay, its
--   attempt given back).
-- - all_jobs: snoozes, progress and meta, live and finished.

CREATE FUNCTION pgqueue.progress_percent(progress jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- Anyone may write a job's progress through SQL: only numbers count.
    SELECT CASE WHEN jsonb_typeof(progress -> 'done') = 'number'
                 AND jsonb_typeof(progress -> 'total') = 'number'
                 AND (progress ->> 'total')::numeric > 0
                THEN round(LEAST(100, GREATEST(0, 100 * (progress ->> 'done')::numeric
                                                     / (progress ->> 'total')::numeric)), 1)
           END
$$;

COMMENT ON FUNCTION pgqueue.progress_percent(jsonb)
IS 'a job''s progress as a percentage: done / total, 0 to 100 with one decimal; NULL without numbers or a total > 0';

CREATE OR REPLACE VIEW pgqueue.running_jobs AS
 SELECT j.id,
    (j.queue)::text AS queue,
    (j.task)::text AS task,
    j.attempt,
    j.max_attempts,
    j.started_at,
    round(EXTRACT(epoch FROM (now() - j.started_at)), 3) AS running_seconds,
    j.heartbeat_at,
    round(EXTRACT(epoch FROM (now() - j.heartbeat_at)), 3) AS heartbeat_age_seconds,
    j.worker_id,
    w.host AS worker_host,
    w.pid AS worker_pid,
    j.args,
    j.progress,
    pgqueue.progress_percent(j.progress) AS progress_percent,
    j.meta,
    j.snoozes
   FROM (pgqueue.jobs j
     LEFT JOIN pgqueue.workers w ON ((w.id = j.worker_id)))
  WHERE (j.state = 'running'::pgqueue.job_state);

CREATE OR REPLACE VIEW pgqueue.scheduled_jobs AS
 SELECT j.id,
    (j.queue)::text AS queue,
    (j.task)::text AS task,
    j.run_at,
    round(EXTRACT(epoch FROM (j.run_at - now())), 3) AS due_in_seconds,
    j.attempt,
    j.max_attempts,
    j.last_error,
    j.args,
    j.snoozes
   FROM pgqueue.jobs j
  WHERE ((j.state = 'queued'::pgqueue.job_state) AND (j.run_at > now()));

CREATE OR REPLACE VIEW pgqueue.all_jobs AS
 SELECT j.id,
    (j.queue)::text AS queue,
    (j.task)::text AS task,
    j.args,
    j.priority,
    j.state,
    j.attempt,
    j.max_attempts,
    j.run_at,
    j.created_at,
    j.started_at,
    NULL::timestamp with time zone AS finished_at,
    j.heartbeat_at,
    j.worker_id,
    j.unique_key,
    j.last_error,
    j.errors,
    j.trace_context,
    NULL::jsonb AS result,
    j.snoozes,
    j.progress,
    j.meta
   FROM pgqueue.jobs j
UNION ALL
 SELECT h.id,
    h.queue,
    h.task,
    h.args,
    h.priority,
    h.state,
    h.attempt,
    h.max_attempts,
    h.run_at,
    h.created_at,
    h.started_at,
    h.finished_at,
    NULL::timestamp with time zone AS heartbeat_at,
    h.worker_id,
    h.unique_key,
    h.last_error,
    h.errors,
    h.trace_context,
    h.result,
    h.snoozes,
    h.progress,
    h.meta
   FROM pgqueue.finished_jobs h;
