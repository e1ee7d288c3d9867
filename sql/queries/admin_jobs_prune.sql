-- admin_jobs_prune: delete one batch of finished jobs older than a cutoff.
-- Parameters: older_than_seconds (float), batch (int). Returns the deleted ids.
-- Index: the BRIN index on finished_at finds old rows; the primary key deletes
--   them. Run repeatedly until fewer than `batch` rows come back, so each
--   statement holds few locks and vacuum keeps up.
DELETE FROM pgqueue.finished_jobs h
WHERE h.id IN (
    SELECT o.id FROM pgqueue.finished_jobs o
    WHERE o.finished_at < now() - %(older_than_seconds)s::float8 * interval '1 second'
    LIMIT %(batch)s
)
RETURNING h.id
