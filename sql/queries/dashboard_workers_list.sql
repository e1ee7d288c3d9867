-- dashboard_workers_list: every registered worker with its busy slots, the jobs it
-- finished in the last hour, its heartbeat age and whether it is the leader.
-- Parameters: none.
-- Index: jobs_running_idx for busy slots; the BRIN index on finished_at bounds
--   the last hour of history.
SELECT
    w.id::text AS id, w.host, w.pid, w.queues, w.tasks, w.concurrency,
    (SELECT count(*) FROM pgqueue.jobs j
     WHERE j.worker_id = w.id AND j.state = 'running') AS busy,
    COALESCE(d.done, 0) AS done_1h,
    COALESCE(d.failed, 0) AS failed_1h,
    w.started_at, w.heartbeat_at,
    round(extract(epoch FROM now() - w.heartbeat_at)::numeric, 3) AS heartbeat_age_seconds,
    EXISTS (SELECT 1 FROM pgqueue.leader l
            WHERE l.worker_id = w.id AND l.expires_at > now()) AS leader
FROM pgqueue.workers w
LEFT JOIN (
    SELECT h.worker_id, count(*) AS done, count(*) FILTER (WHERE h.state = 'failed') AS failed
    FROM pgqueue.finished_jobs h
    WHERE h.finished_at > now() - interval '1 hour' AND h.worker_id IS NOT NULL
    GROUP BY h.worker_id
) d ON d.worker_id = w.id
ORDER BY w.host, w.pid, w.id
