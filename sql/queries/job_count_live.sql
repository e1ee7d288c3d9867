-- job_count_live: how many of these jobs are still live (queued or running).
-- Parameters: ids (bigint[]). Index: the primary key of pgqueue.jobs.
-- Used by `pgqueue demo` as a safety net next to the worker's events.
SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%(ids)s::bigint[])
