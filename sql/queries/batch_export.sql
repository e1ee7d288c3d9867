-- batch_export: every job of a batch, live or finished, in id order, for
-- `pgqueue batch export` (read through a server-side cursor).
-- Parameters: batch_id.
-- Returns: id, task, state, attempts, args, result (succeeded jobs only), error
--   (the last error of jobs that did not succeed; for live jobs, of an earlier
--   attempt), duration_seconds (finished_at - started_at of the last attempt),
--   finished_at.
-- Index: finished_jobs_batch_idx and jobs_batch_idx; the sort is the server's.
SELECT x.id, x.task, x.state, x.attempt, x.args, x.result, x.error, x.duration_seconds,
       x.finished_at
FROM (
    SELECT h.id, h.task::text, h.state::text, h.attempt, h.args,
           CASE WHEN h.state = 'succeeded' THEN h.result END AS result,
           CASE WHEN h.state <> 'succeeded' THEN h.last_error END AS error,
           round(extract(epoch FROM h.finished_at - h.started_at)::numeric, 3)::float8
               AS duration_seconds,
           h.finished_at
    FROM pgqueue.finished_jobs h
    WHERE h.batch_id = %(batch_id)s
    UNION ALL
    SELECT j.id, j.task::text, j.state::text, j.attempt, j.args, NULL, j.last_error,
           NULL, NULL
    FROM pgqueue.jobs j
    WHERE j.batch_id = %(batch_id)s
) x
ORDER BY x.id
