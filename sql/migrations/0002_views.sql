-- 0002_views: inspection views for people with psql.
--
-- Every view reads live jobs from pgqueue.jobs (small) and finished jobs through
-- indexes of pgqueue.finished_jobs, so they stay fast as history grows.

-- One row per queue: what is ready, waiting, running, failed and how far behind.
--   ready              queued jobs whose run_at has come
--   scheduled          queued jobs whose run_at is still in the future
--   running            jobs a worker holds now
--   failed             failed jobs kept in history
--   succeeded_1h       jobs that succeeded in the last hour
--   lag_seconds        age of the oldest ready job (0 when nothing is ready)
--   unclaimable        ready jobs whose task no registered worker of this queue can run
-- The view reads a function so the statement runs with JIT off: the planner
-- cannot know how few queues there are (pgqueue.queues is tiny and rarely
-- analysed) and would otherwise spend hundreds of ms compiling a 20 ms query.
CREATE FUNCTION pgqueue.queue_stats_rows()
RETURNS TABLE (queue text, ready bigint, scheduled bigint, running bigint, failed bigint,
               succeeded_1h bigint, lag_seconds numeric, unclaimable bigint)
LANGUAGE sql STABLE SET jit = off AS $$
SELECT
    q.name::text AS queue,
    COALESCE(l.ready, 0)::bigint AS ready,
    COALESCE(l.scheduled, 0)::bigint AS scheduled,
    r.running,
    f.failed,
    s.succeeded_1h,
    round(COALESCE(extract(epoch FROM now() - l.oldest_ready), 0)::numeric, 3) AS lag_seconds,
    COALESCE(l.unclaimable, 0)::bigint AS unclaimable
FROM pgqueue.queues q
LEFT JOIN LATERAL (
    SELECT
        sum(t.n) FILTER (WHERE t.due) AS ready,
        sum(t.n) FILTER (WHERE NOT t.due) AS scheduled,
        min(t.oldest) FILTER (WHERE t.due) AS oldest_ready,
        sum(t.n) FILTER (WHERE t.due AND NOT EXISTS (
            SELECT 1 FROM pgqueue.workers w
            WHERE q.name = ANY (w.queues) AND t.task = ANY (w.tasks))) AS unclaimable
    FROM (
        SELECT j.task, j.run_at <= now() AS due, count(*) AS n, min(j.run_at) AS oldest
        FROM pgqueue.jobs j
        WHERE j.queue = q.name AND j.state = 'queued'
        GROUP BY 1, 2
    ) t
) l ON true
CROSS JOIN LATERAL (
    SELECT count(*) AS running FROM pgqueue.jobs j
    WHERE j.queue = q.name AND j.state = 'running'
) r
CROSS JOIN LATERAL (
    SELECT count(*) AS failed FROM pgqueue.finished_jobs h
    WHERE h.queue = q.name AND h.state = 'failed'
) f
CROSS JOIN LATERAL (
    SELECT count(*) AS succeeded_1h FROM pgqueue.finished_jobs h
    WHERE h.queue = q.name AND h.state = 'succeeded'
      AND h.finished_at > now() - interval '1 hour'
) s;
$$;

CREATE VIEW pgqueue.queue_stats AS
SELECT * FROM pgqueue.queue_stats_rows();

-- Jobs a worker holds now, with how long they have run and how fresh their heartbeat is.
CREATE VIEW pgqueue.running_jobs AS
SELECT
    j.id, j.queue::text AS queue, j.task::text AS task, j.attempt, j.max_attempts,
    j.started_at,
    round(extract(epoch FROM now() - j.started_at)::numeric, 3) AS running_seconds,
    j.heartbeat_at,
    round(extract(epoch FROM now() - j.heartbeat_at)::numeric, 3) AS heartbeat_age_seconds,
    j.worker_id, w.host AS worker_host, w.pid AS worker_pid,
    j.args
FROM pgqueue.jobs j
LEFT JOIN pgqueue.workers w ON w.id = j.worker_id
WHERE j.state = 'running';

-- Jobs that failed for good, with their last error. Newest first:
--   SELECT * FROM pgqueue.failed_jobs ORDER BY finished_at DESC LIMIT 20;
CREATE VIEW pgqueue.failed_jobs AS
SELECT
    h.id, h.queue, h.task, h.attempt, h.max_attempts, h.finished_at,
    h.last_error, h.errors, h.args, h.worker_id
FROM pgqueue.finished_jobs h
WHERE h.state = 'failed';

-- Queued jobs waiting for their run_at (including retries waiting for backoff).
CREATE VIEW pgqueue.scheduled_jobs AS
SELECT
    j.id, j.queue::text AS queue, j.task::text AS task, j.run_at,
    round(extract(epoch FROM j.run_at - now())::numeric, 3) AS due_in_seconds,
    j.attempt, j.max_attempts, j.last_error, j.args
FROM pgqueue.jobs j
WHERE j.state = 'queued' AND j.run_at > now();

-- Live and finished jobs in one shape.
CREATE VIEW pgqueue.all_jobs AS
SELECT
    j.id, j.queue::text AS queue, j.task::text AS task, j.args, j.priority, j.state,
    j.attempt, j.max_attempts, j.run_at, j.created_at, j.started_at,
    NULL::timestamptz AS finished_at, j.heartbeat_at, j.worker_id, j.unique_key,
    j.last_error, j.errors, j.trace_context, NULL::jsonb AS result
FROM pgqueue.jobs j
UNION ALL
SELECT
    h.id, h.queue, h.task, h.args, h.priority, h.state,
    h.attempt, h.max_attempts, h.run_at, h.created_at, h.started_at,
    h.finished_at, NULL::timestamptz, h.worker_id, h.unique_key,
    h.last_error, h.errors, h.trace_context, h.result
FROM pgqueue.finished_jobs h;

-- Finished jobs per queue and minute over the last hour.
CREATE VIEW pgqueue.recent_throughput AS
SELECT
    h.queue,
    date_trunc('minute', h.finished_at) AS minute,
    count(*) FILTER (WHERE h.state = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE h.state = 'failed') AS failed,
    count(*) FILTER (WHERE h.state = 'cancelled') AS cancelled
FROM pgqueue.finished_jobs h
WHERE h.finished_at > now() - interval '1 hour'
GROUP BY 1, 2;
