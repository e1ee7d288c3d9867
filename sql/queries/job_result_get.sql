-- job_result_get: a job's state and, once it finished, its result and last error.
-- Parameters: job_id.
-- Returns: no row when no job has this id; else state, result (succeeded jobs'
--   JSON return value), last_error, attempt. One statement, one snapshot: a job
--   moving to history meanwhile is found in exactly one of the two tables.
-- Index: the primary keys of pgqueue.finished_jobs and pgqueue.jobs.
SELECT h.state::text, h.result, h.last_error, h.attempt
FROM pgqueue.finished_jobs h
WHERE h.id = %(job_id)s
UNION ALL
SELECT j.state::text, NULL::jsonb, j.last_error, j.attempt
FROM pgqueue.jobs j
WHERE j.id = %(job_id)s
LIMIT 1
