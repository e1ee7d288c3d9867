-- admin_job_retry: retry one finished job by hand; it keeps its id.
-- Parameters: job_id. Returns one row: the outcome text of pgqueue.retry()
--   (retried, not_found, live, succeeded, unique_key_taken).
-- Locks: the moved row (one DELETE ... INSERT statement inside pgqueue.retry_jobs).
SELECT pgqueue.retry(%(job_id)s::bigint) AS outcome
