-- job_hand_back: at shutdown, return every job this worker still holds to
-- `queued`, due now, without waiting for the reaper. The attempt is given back
-- (it was interrupted, not failed) and the interruption is recorded in errors.
-- Fenced on worker_id; wakes other workers of the affected queues.
-- Parameters: worker_id.
-- Returns: the ids handed back.
WITH handed AS (
    UPDATE pgqueue.jobs
    SET state = 'queued',
        run_at = now(),
        worker_id = NULL,
        heartbeat_at = NULL,
        attempt = attempt - 1,
        errors = pgqueue.append_error(errors, jsonb_build_object(
            'kind', 'interrupted', 'attempt', attempt, 'at', now(),
            'message', 'worker shut down before the job finished; handed back',
            'worker_id', worker_id))
    WHERE worker_id = %(worker_id)s AND state = 'running'
    RETURNING id, queue
),
woken AS (
    SELECT pg_notify('pgqueue_jobs', q) FROM (SELECT DISTINCT queue FROM handed) AS h(q)
)
-- A SELECT in WITH runs only if referenced: the always-true count makes the
-- notifications happen.
SELECT id FROM handed WHERE (SELECT count(*) FROM woken) >= 0
