-- job_totals_finished: outcome totals of these jobs in history, one row per final state.
-- retries counts the attempts after the first (greatest(...) keeps a job cancelled
-- before its first attempt at 0).
-- Parameters: ids (bigint[]). Index: the primary key of pgqueue.finished_jobs.
SELECT state::text AS state, count(*) AS jobs, sum(greatest(attempt - 1, 0)) AS retries
FROM pgqueue.finished_jobs
WHERE id = ANY(%(ids)s::bigint[])
GROUP BY state
ORDER BY state
