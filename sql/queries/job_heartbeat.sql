-- job_heartbeat: refresh this worker's row and the heartbeats of the jobs it
-- holds, in one statement. Only the attempts the worker knows it holds, by
-- (job id, claim token): a job claimed by a statement whose answer was lost is
-- not kept alive, so the reaper returns it, and a stale process sharing a fixed
-- worker_id cannot keep a newer attempt alive. Re-creates the worker row if the
-- reaper removed it.
-- It never waits for a row lock: a row locked by another statement (this
-- worker's outcome write finishing the job, which locks its rows in its own
-- order) is skipped for this beat, so the two cannot deadlock, and a job being
-- finished needs no heartbeat.
-- Parameters: worker_id, ids and tokens (bigint[], of equal length), host, pid,
-- queues, tasks, concurrency.
-- Returns: how many jobs were refreshed, and the ids of those whose
-- cancellation was requested (in case the NOTIFY was missed).
WITH held AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS h(id, token)
),
free AS (
    SELECT j.id
    FROM pgqueue.jobs j
    JOIN held h ON j.id = h.id AND j.claim_token = h.token
    WHERE j.worker_id = %(worker_id)s AND j.state = 'running'
    FOR UPDATE OF j SKIP LOCKED
),
refreshed AS (
    UPDATE pgqueue.jobs j
    SET heartbeat_at = now()
    FROM free f
    WHERE j.id = f.id
    RETURNING j.id, j.cancel_requested_at
),
worker AS (
    INSERT INTO pgqueue.workers (id, host, pid, queues, tasks, concurrency)
    VALUES (%(worker_id)s, %(host)s, %(pid)s, %(queues)s, %(tasks)s, %(concurrency)s)
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
    RETURNING id
)
SELECT (SELECT count(*) FROM refreshed),
       (SELECT count(*) FROM worker),
       ARRAY(SELECT id FROM refreshed WHERE cancel_requested_at IS NOT NULL)
