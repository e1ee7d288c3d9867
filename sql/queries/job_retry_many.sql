-- job_retry_many: retry one bounded batch of failed or cancelled jobs; each
-- keeps its id (pgqueue.retry_jobs). Parameters: ids (bigint[]).
-- Returns one row: how many moved. Locks: the moved rows.
SELECT count(*) AS retried FROM pgqueue.retry_jobs(%(ids)s::bigint[])
