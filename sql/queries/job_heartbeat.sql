-- job_heartbeat: refresh this worker's row and the heartbeats of the jobs it
-- holds, in one statement. Only the attempts the worker knows it holds, by
-- (job id, claim token): a job claimed by a statement whose answer was lost is
-- not kept alive, so the reaper returns it, and a stale process sharing a fixed
-- worker_id cannot keep a newer attempt alive. Re-creates the worker row if the
-- reaper removed it.
-- Parameters: worker_id, ids and tokens (bigint[], of equal length), host, pid,
-- queues, tasks, concurrency.
-- Returns: how many jobs were refreshed, and the ids of those whose
-- cancellation was requested (in case the NOTIFY was missed).
WITH held AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS h(id, token)
),
refreshed AS (
    UPDATE pgqueue.jobs j
    SET heartbeat_at = now()
    FROM held h
    WHERE j.id = h.id AND j.claim_token = h.token
      AND j.worker_id = %(worker_id)s AND j.state = 'running'
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
