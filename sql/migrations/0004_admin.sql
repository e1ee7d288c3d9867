-- 0004_admin: retrying finished jobs by hand, and an index for browsing history.
--
-- A retried job keeps its id: its row moves from pgqueue.finished_jobs back to
-- pgqueue.jobs in one statement, queued now with its attempt count reset and its
-- error history kept.

-- Browsing history newest first (the dashboard, `pgqueue jobs list`): one
-- backward scan per (queue, state) pair gives keyset pagination on id.
CREATE INDEX finished_jobs_queue_state_id_idx ON pgqueue.finished_jobs (queue, state, id);

-- Moves the failed or cancelled jobs among `ids` back to pgqueue.jobs, queued
-- now, attempt 0. A job whose unique_key a live job holds stays where it is.
-- Returns the ids that moved. Locks: the moved rows of both tables.
CREATE FUNCTION pgqueue.retry_jobs(ids bigint[]) RETURNS SETOF bigint
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
         depends_on, batch_id, concurrency_key)
    SELECT m.id, m.queue, m.task, m.args, m.priority, 'queued', 0, m.max_attempts, now(),
           m.created_at, m.unique_key, m.last_error, m.errors, m.trace_context,
           m.timeout_seconds, NULL, m.depends_on, m.batch_id, m.concurrency_key
    FROM moved m
    RETURNING j.id
$$;

-- Retries one job by hand and says what happened:
--   retried           the job is queued again, with the same id
--   not_found         no job has this id
--   live              the job is queued or running already
--   succeeded         the job succeeded; it is not retried
--   unique_key_taken  a live job holds the job's unique_key
CREATE FUNCTION pgqueue.retry(job_id bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    found_state pgqueue.job_state;
BEGIN
    IF EXISTS (SELECT 1 FROM pgqueue.retry_jobs(ARRAY[job_id])) THEN
        RETURN 'retried';
    END IF;
    IF EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = job_id) THEN
        RETURN 'live';
    END IF;
    SELECT h.state INTO found_state FROM pgqueue.finished_jobs h WHERE h.id = job_id;
    IF found_state IS NULL THEN
        RETURN 'not_found';
    ELSIF found_state = 'succeeded' THEN
        RETURN 'succeeded';
    END IF;
    RETURN 'unique_key_taken';
END
$$;

-- Retries every failed job, of one queue or of all (queue NULL); returns how many.
CREATE FUNCTION pgqueue.retry_failed(queue text DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$
    SELECT count(*) FROM pgqueue.retry_jobs(ARRAY(
        SELECT h.id FROM pgqueue.finished_jobs h
        WHERE h.state = 'failed' AND (retry_failed.queue IS NULL OR h.queue = retry_failed.queue)))
$$;
