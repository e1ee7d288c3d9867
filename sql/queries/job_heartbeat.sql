-- job_heartbeat: refresh this worker's row and the heartbeats of the jobs it
-- holds, in one statement. Only the ids the worker knows it holds: a job
-- claimed by a statement whose answer was lost is not kept alive, so the
-- reaper returns it. Re-creates the worker row if the reaper removed it.
-- Parameters: worker_id, ids (bigint[]), host, pid, queues, tasks, concurrency.
-- Returns: how many jobs were refreshed, and the ids of those whose
-- cancellation was requested (in case the NOTIFY was missed).
WITH refreshed AS (
    UPDATE pgqueue.jobs
    SET heartbeat_at = now()
    WHERE worker_id = %(worker_id)s AND state = 'running' AND id = ANY (%(ids)s::bigint[])
    RETURNING id, cancel_requested_at
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
