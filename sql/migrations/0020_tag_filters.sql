-- 0020_tag_filters: finding jobs by tag, live and in history (README: "Tags").
--
-- - finished_job_tags: one row per (tag, job) of history, kept by triggers on
--   finished_jobs (insert, delete, update of tags, truncate), so the newest jobs
--   with a tag are one backward walk of its primary key (tag, job_id), however
--   long history is and however the tag's jobs are spread over it: the newest
--   50 of a tag on 1 % of 10,000,000 jobs, all of them a month old, cost what the
--   newest 50 of a tag on every other job cost. A GIN index over
--   finished_jobs.tags cannot do that: it finds every row with the tag, and the
--   planner, left to choose between it and walking the primary key backwards,
--   guesses wrong for a tag whose jobs are few, clustered in time, or absent
--   (measured in benchmarks/tags.py: seconds against milliseconds).
-- - The insert trigger is a row trigger WHEN (tags <> '{}'): archiving a job
--   without tags costs nothing more than the test.
-- - jobs_tags_idx: a GIN index over the tags of live jobs that have any
--   (partial: a job without tags costs it nothing; pgqueue.jobs is kept small,
--   so "every live job with this tag" is the question asked of it). A query
--   reaches it only when it says `AND tags <> '{}'` too, as pgqueue's do.
-- - The views running_jobs, scheduled_jobs, failed_jobs and all_jobs show each
--   job's tags and meta, as their last columns.
--
-- Filling finished_job_tags from an existing history reads it once and holds
-- a lock on finished_jobs that blocks outcome writes while it runs (the README
-- gives its measured time for 10,000,000 jobs).

CREATE TABLE pgqueue.finished_job_tags (
    tag text NOT NULL,
    job_id bigint NOT NULL,
    PRIMARY KEY (tag, job_id)
);

COMMENT ON TABLE pgqueue.finished_job_tags
IS 'one row per tag of each finished job, kept by the triggers on finished_jobs';

LOCK TABLE pgqueue.finished_jobs IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO pgqueue.finished_job_tags (tag, job_id)
SELECT DISTINCT t.tag, h.id
FROM pgqueue.finished_jobs h
CROSS JOIN LATERAL unnest(h.tags) AS t(tag)
WHERE h.tags <> '{}';

CREATE FUNCTION pgqueue.finished_job_tags_add() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO pgqueue.finished_job_tags (tag, job_id)
    SELECT DISTINCT t.tag, NEW.id FROM unnest(NEW.tags) AS t(tag)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION pgqueue.finished_job_tags_track() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM pgqueue.finished_job_tags t
        USING (SELECT r.id, u.tag FROM deleted_rows r
               CROSS JOIN LATERAL unnest(r.tags) AS u(tag)
               WHERE r.tags OPERATOR(pg_catalog.<>) '{}') d
        WHERE t.tag OPERATOR(pg_catalog.=) d.tag AND t.job_id OPERATOR(pg_catalog.=) d.id;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only rows whose tags changed (an update of anything else moves nothing).
        DELETE FROM pgqueue.finished_job_tags t
        USING (SELECT o.id, u.tag FROM old_rows o
               JOIN new_rows n ON n.id OPERATOR(pg_catalog.=) o.id
               CROSS JOIN LATERAL unnest(o.tags) AS u(tag)
               WHERE o.tags IS DISTINCT FROM n.tags) d
        WHERE t.tag OPERATOR(pg_catalog.=) d.tag AND t.job_id OPERATOR(pg_catalog.=) d.id;
        INSERT INTO pgqueue.finished_job_tags (tag, job_id)
        SELECT DISTINCT u.tag, n.id FROM new_rows n
        LEFT JOIN old_rows o ON o.id OPERATOR(pg_catalog.=) n.id
        CROSS JOIN LATERAL unnest(n.tags) AS u(tag)
        WHERE o.tags IS DISTINCT FROM n.tags
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'TRUNCATE' THEN
        -- As failed_counts_track: TRUNCATE waits for everyone using the table;
        -- when the same statement truncates it too, it is empty already.
        BEGIN
            TRUNCATE pgqueue.finished_job_tags;
        EXCEPTION WHEN object_in_use THEN
            LOCK TABLE pgqueue.finished_job_tags IN EXCLUSIVE MODE;
            DELETE FROM pgqueue.finished_job_tags;
        END;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER finished_jobs_tags_inserted AFTER INSERT ON pgqueue.finished_jobs
FOR EACH ROW WHEN (NEW.tags <> '{}') EXECUTE FUNCTION pgqueue.finished_job_tags_add();

CREATE TRIGGER finished_jobs_tags_deleted AFTER DELETE ON pgqueue.finished_jobs
REFERENCING OLD TABLE AS deleted_rows
FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.finished_job_tags_track();

CREATE TRIGGER finished_jobs_tags_updated AFTER UPDATE ON pgqueue.finished_jobs
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.finished_job_tags_track();

CREATE TRIGGER finished_jobs_tags_truncated AFTER TRUNCATE ON pgqueue.finished_jobs
FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.finished_job_tags_track();

CREATE INDEX IF NOT EXISTS jobs_tags_idx ON pgqueue.jobs
    USING gin (tags) WHERE tags <> '{}';

-- The views gain tags (and failed_jobs and scheduled_jobs meta) at their ends,
-- from their definitions in 0019_job_reports (a view can only grow at the end).

-- Jobs a worker holds now, with how long they have run and how fresh their heartbeat is.
CREATE OR REPLACE VIEW pgqueue.running_jobs AS
SELECT
    j.id, j.queue::text AS queue, j.task::text AS task, j.attempt, j.max_attempts,
    j.started_at,
    round(extract(epoch FROM now() - j.started_at), 3) AS running_seconds,
    j.heartbeat_at,
    round(extract(epoch FROM now() - j.heartbeat_at), 3) AS heartbeat_age_seconds,
    j.worker_id, w.host AS worker_host, w.pid AS worker_pid,
    j.args, j.progress, pgqueue.progress_percent(j.progress) AS progress_percent,
    j.meta, j.snoozes, j.tags
FROM pgqueue.jobs j
LEFT JOIN pgqueue.workers w ON w.id = j.worker_id
WHERE j.state = 'running';

-- Jobs that failed for good, with their last error. Newest first:
--   SELECT * FROM pgqueue.failed_jobs ORDER BY finished_at DESC LIMIT 20;
CREATE OR REPLACE VIEW pgqueue.failed_jobs AS
SELECT
    h.id, h.queue, h.task, h.attempt, h.max_attempts, h.finished_at,
    h.last_error, h.errors, h.args, h.worker_id, h.tags, h.meta
FROM pgqueue.finished_jobs h
WHERE h.state = 'failed';

-- Queued jobs waiting for their run_at (including retries waiting for backoff).
CREATE OR REPLACE VIEW pgqueue.scheduled_jobs AS
SELECT
    j.id, j.queue::text AS queue, j.task::text AS task, j.run_at,
    round(extract(epoch FROM j.run_at - now()), 3) AS due_in_seconds,
    j.attempt, j.max_attempts, j.last_error, j.args, j.snoozes, j.tags, j.meta
FROM pgqueue.jobs j
WHERE j.state = 'queued' AND j.run_at > now();

-- Live and finished jobs in one shape. By tag, newest first:
--   SELECT * FROM pgqueue.all_jobs
--   WHERE tags @> ARRAY['customer:42'] AND tags <> '{}' ORDER BY id DESC LIMIT 50;
CREATE OR REPLACE VIEW pgqueue.all_jobs AS
SELECT
    j.id, j.queue::text AS queue, j.task::text AS task, j.args, j.priority, j.state,
    j.attempt, j.max_attempts, j.run_at, j.created_at, j.started_at,
    NULL::timestamptz AS finished_at, j.heartbeat_at, j.worker_id, j.unique_key,
    j.last_error, j.errors, j.trace_context, NULL::jsonb AS result,
    j.snoozes, j.progress, j.meta, j.tags
FROM pgqueue.jobs j
UNION ALL
SELECT
    h.id, h.queue, h.task, h.args, h.priority, h.state,
    h.attempt, h.max_attempts, h.run_at, h.created_at, h.started_at,
    h.finished_at, NULL::timestamptz, h.worker_id, h.unique_key,
    h.last_error, h.errors, h.trace_context, h.result,
    h.snoozes, h.progress, h.meta, h.tags
FROM pgqueue.finished_jobs h;
