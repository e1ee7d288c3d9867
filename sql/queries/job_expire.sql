-- job_expire: the leader moves queued jobs past their expires_at to history as
-- cancelled with the reason 'expired' (the row built by pgqueue.finished_row,
-- migration 0012). A running job is not affected.
-- Parameters: limit (at most this many jobs per statement; the leader runs it
--   again while a statement expires that many).
-- Index: jobs_expires_at_idx. Locks: FOR UPDATE SKIP LOCKED.
-- Returns: the expired ids.
WITH expired AS (
    SELECT id FROM pgqueue.jobs
    WHERE state = 'queued' AND expires_at IS NOT NULL AND expires_at <= now()
    ORDER BY expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM pgqueue.jobs j USING expired e WHERE j.id = e.id RETURNING j
)
INSERT INTO pgqueue.finished_jobs
SELECT (pgqueue.finished_row(g.j, 'cancelled', 'expired', (g.j).errors)).*
FROM gone g
RETURNING id
