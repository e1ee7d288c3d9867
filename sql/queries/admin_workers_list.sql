-- admin_workers_list: every registered worker with its busy slots and heartbeat age.
-- Parameters: none. Index: jobs_running_idx counts each worker's running jobs.
SELECT
    w.id::text AS id, w.host, w.pid, w.queues, w.tasks, w.concurrency,
    (SELECT count(*) FROM pgqueue.jobs j
     WHERE j.worker_id = w.id AND j.state = 'running') AS busy,
    w.started_at, w.heartbeat_at,
    round(extract(epoch FROM now() - w.heartbeat_at)::numeric, 3) AS heartbeat_age_seconds
FROM pgqueue.workers w
ORDER BY w.host, w.pid, w.id
