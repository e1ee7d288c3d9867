-- job_cancel_many: cancel one bounded batch of jobs through pgqueue.cancel
-- (queued: at once; running: asks the worker). Parameters: ids (bigint[]), reason.
-- Returns one row per outcome with its count. Locks: each live row while deciding.
SELECT c.outcome, count(*) AS jobs
FROM unnest(%(ids)s::bigint[]) AS i(id)
CROSS JOIN LATERAL (SELECT pgqueue.cancel(i.id, %(reason)s::text) AS outcome) c
GROUP BY c.outcome
