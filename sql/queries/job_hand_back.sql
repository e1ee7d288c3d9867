-- job_hand_back: at shutdown, return the jobs this worker holds whose attempt
-- was interrupted (or never started) to `queued`, due now, without waiting for
-- the reaper. The attempt is given back (it was interrupted, not failed) and
-- the interruption is recorded in errors. Wakes other workers of the affected
-- queues.
-- FENCED on (job id, claim token) and worker_id: only the attempts this
-- process started are handed back, never a later attempt of the same job, nor
-- a job held by another process under the same fixed worker_id. A job whose
-- handler finished is never passed here, even if its outcome could not be
-- written: its attempt counted, and the reaper returns it (or fails it on its
-- last attempt) after the stall timeout.
-- Parameters: ids, tokens (bigint[], of equal length), worker_id.
-- Returns: the ids handed back.
WITH held AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS h(id, token)
),
handed AS (
    UPDATE pgqueue.jobs j
    SET state = 'queued',
        run_at = now(),
        worker_id = NULL,
        heartbeat_at = NULL,
        attempt = j.attempt - 1,
        errors = pgqueue.append_error(j.errors, jsonb_build_object(
            'kind', 'interrupted', 'attempt', j.attempt, 'at', now(),
            'message', 'worker shut down before the job finished; handed back',
            'worker_id', j.worker_id))
    FROM held h
    WHERE j.id = h.id AND j.claim_token = h.token
      AND j.worker_id = %(worker_id)s AND j.state = 'running'
    RETURNING j.id, j.queue
),
woken AS (
    SELECT pg_notify('pgqueue_jobs', q) FROM (SELECT DISTINCT queue FROM handed) AS h(q)
)
-- A SELECT in WITH runs only if referenced: the always-true count makes the
-- notifications happen.
SELECT id FROM handed WHERE (SELECT count(*) FROM woken) >= 0
