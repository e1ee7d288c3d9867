-- admin_job_get: one job, live or finished, with its worker's host and pid, and
-- what it reported (snoozes, progress, meta).
-- Parameters: job_id. Returns 0 or 1 row.
-- Index: the primary keys of pgqueue.jobs and pgqueue.finished_jobs.
SELECT
    j.id, j.queue::text AS queue, j.task::text AS task, j.args, j.priority,
    j.state::text AS state, j.attempt, j.max_attempts, j.run_at, j.created_at,
    j.started_at, NULL::timestamptz AS finished_at, j.heartbeat_at, j.worker_id::text,
    j.unique_key, j.last_error, j.errors, j.trace_context, NULL::jsonb AS result,
    w.host AS worker_host, w.pid AS worker_pid, j.tags, j.snoozes, j.progress, j.meta
FROM pgqueue.jobs j
LEFT JOIN pgqueue.workers w ON w.id = j.worker_id
WHERE j.id = %(job_id)s
UNION ALL
SELECT
    h.id, h.queue, h.task, h.args, h.priority,
    h.state::text, h.attempt, h.max_attempts, h.run_at, h.created_at,
    h.started_at, h.finished_at, NULL::timestamptz, h.worker_id::text,
    h.unique_key, h.last_error, h.errors, h.trace_context, h.result,
    w.host, w.pid, h.tags, h.snoozes, h.progress, h.meta
FROM pgqueue.finished_jobs h
LEFT JOIN pgqueue.workers w ON w.id = h.worker_id
WHERE h.id = %(job_id)s
LIMIT 1
