-- job_reclaim_stalled: the reaper. Running jobs whose heartbeat is older than
-- the stall timeout go back to `queued` (due now) if attempts remain, else to
-- `failed` in history (the row built by pgqueue.finished_row, migration 0012);
-- the reason is recorded either way. Wakes the queues that got jobs back. Run
-- by the leader only.
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
    RETURNING j
),
archived AS (
    INSERT INTO pgqueue.finished_jobs
    SELECT (pgqueue.finished_row(
               e.j, 'failed',
               'stalled: no heartbeat for ' || %(stall_seconds)s || ' s on the last attempt',
               pgqueue.append_error((e.j).errors, jsonb_build_object(
                   'kind', 'stalled', 'attempt', (e.j).attempt, 'at', now(),
                   'worker_id', (e.j).worker_id,
                   'message', 'stalled: no heartbeat for ' || %(stall_seconds)s
                              || ' s on the last attempt')))).*
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
