-- job_reclaim_stalled: the reaper. Running jobs whose heartbeat is older than
-- the stall timeout go back to `queued` (due now) if attempts remain, else to
-- `failed` in history; the reason is recorded either way. Wakes the queues
-- that got jobs back. Run by the leader only.
-- Parameters: stall_seconds, limit (at most this many jobs per statement: after
--   a long outage the reaper runs many short statements, oldest heartbeat first,
--   until one reclaims fewer than the limit).
-- Index: jobs_running_idx (partial over running jobs, as many as the workers'
--   slots); they are sorted by heartbeat to take the longest stalled first.
-- Locks: FOR UPDATE SKIP LOCKED, so a job being completed right now is left alone.
-- Returns: id, queue, task, attempt, outcome ('queued' or 'failed') per job.
WITH stalled AS (
    SELECT id
    FROM pgqueue.jobs
    WHERE state = 'running'
      AND heartbeat_at < now() - %(stall_seconds)s * interval '1 second'
    ORDER BY heartbeat_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
requeued AS (
    UPDATE pgqueue.jobs j
    SET state = 'queued',
        run_at = now(),
        worker_id = NULL,
        heartbeat_at = NULL,
        last_error = 'stalled: no heartbeat for ' || %(stall_seconds)s || ' s; reclaimed',
        errors = pgqueue.append_error(j.errors, jsonb_build_object(
            'kind', 'stalled', 'attempt', j.attempt, 'at', now(), 'worker_id', j.worker_id,
            'message', 'stalled: no heartbeat for ' || %(stall_seconds)s || ' s; reclaimed'))
    FROM stalled s
    WHERE j.id = s.id AND j.attempt < j.max_attempts
    RETURNING j.id, j.queue, j.task, j.attempt
),
exhausted AS (
    DELETE FROM pgqueue.jobs j
    USING stalled s
    WHERE j.id = s.id AND j.attempt >= j.max_attempts
    RETURNING j.*
),
archived AS (
    INSERT INTO pgqueue.finished_jobs
        (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
         started_at, finished_at, worker_id, unique_key, last_error, errors, trace_context,
         timeout_seconds, expires_at, cancel_requested_at, depends_on, batch_id,
         concurrency_key)
    SELECT e.id, e.queue, e.task, e.args, e.priority, 'failed', e.attempt, e.max_attempts,
           e.run_at, e.created_at, e.started_at, now(), e.worker_id, e.unique_key,
           'stalled: no heartbeat for ' || %(stall_seconds)s || ' s on the last attempt',
           pgqueue.append_error(e.errors, jsonb_build_object(
               'kind', 'stalled', 'attempt', e.attempt, 'at', now(), 'worker_id', e.worker_id,
               'message', 'stalled: no heartbeat for ' || %(stall_seconds)s
                          || ' s on the last attempt')),
           e.trace_context, e.timeout_seconds, e.expires_at, e.cancel_requested_at,
           e.depends_on, e.batch_id, e.concurrency_key
    FROM exhausted e
    RETURNING id, queue, task, attempt
),
woken AS (
    SELECT pg_notify('pgqueue_jobs', q) FROM (SELECT DISTINCT queue FROM requeued) AS r(q)
)
-- A SELECT in WITH runs only if referenced: the always-true count makes the
-- notifications happen.
SELECT id, queue::text, task::text, attempt, 'queued' AS outcome FROM requeued
WHERE (SELECT count(*) FROM woken) >= 0
UNION ALL
SELECT id, queue, task, attempt, 'failed' FROM archived
