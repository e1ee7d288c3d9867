-- admin_jobs_prune_count: what admin_jobs_prune would delete, counted by state.
-- Parameters: older_than_seconds (float). Returns one row per state that has
--   rows to go (state text, jobs bigint), in the enum's order (succeeded, failed,
--   cancelled); no row when no finished job is that old.
-- Index: the BRIN index on finished_at, as admin_jobs_prune. Reads only; no locks
--   beyond those of a plain SELECT.
SELECT h.state::text AS state, count(*) AS jobs
FROM pgqueue.finished_jobs h
WHERE h.finished_at < now() - %(older_than_seconds)s::float8 * interval '1 second'
GROUP BY h.state
ORDER BY h.state
